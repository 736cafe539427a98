"""Live progress of the running tasks: what their logs gained since the last look, read
about twice a second and handed to `on_live` (one line per task on a terminal)."""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

# A running task as the live display gets it: its name (padded to the run's width), its
# latest progress ("N/M note", or "" before the first), its seconds so far, and the
# progress lines its log gained since the last call (none, one or more).
LiveTask = tuple[str, str, float, tuple[str, ...]]
POLL_S = 0.5


@dataclass
class _Entry:
    log: Path
    start: float
    read: int = 0  # bytes of the log read so far
    latest: str = ""


class Live:
    def __init__(
        self,
        on_live: Callable[[list[LiveTask]], None] | None,
        progress: Callable[[str], str | None],
        width: int,
    ) -> None:
        self.on_live, self.progress, self.width = on_live, progress, width
        self._tasks: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def add(self, task: str, log: Path, start: float) -> None:
        with self._lock:
            self._tasks[task] = _Entry(log, start)

    def remove(self, task: str) -> None:
        try:
            self.publish()  # the lines it wrote last
        finally:
            with self._lock:
                self._tasks.pop(task, None)

    def _new_lines(self, entry: _Entry) -> list[str]:
        with contextlib.suppress(OSError), entry.log.open("rb") as f:
            f.seek(entry.read)
            chunk = f.read()
            end = chunk.rfind(b"\n") + 1  # whole lines only
            entry.read += end
            lines = chunk[:end].decode(errors="replace").splitlines()
            return [note for line in lines if (note := self.progress(line)) is not None]
        return []

    def publish(self) -> None:
        """Read what running tasks' logs added, and hand their progress to on_live."""
        if self.on_live is None:
            return
        with self._lock:
            states: list[LiveTask] = []
            for name, entry in list(self._tasks.items()):
                new = self._new_lines(entry)
                entry.latest = new[-1] if new else entry.latest
                seconds = time.monotonic() - entry.start
                states.append((name.ljust(self.width), entry.latest, seconds, tuple(new)))
            try:
                self.on_live(states)
            except Exception:  # e.g. a closed stdout: the display's loss, not the run's
                traceback.print_exc()
                self.on_live = None

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(POLL_S):
                self.publish()

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
