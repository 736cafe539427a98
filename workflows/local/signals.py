"""Stops on SIGINT and SIGTERM that clean up: the first signal raises `Interrupted` in the
main thread, so the runner stops what it started and records the run; a second one
cannot cut that short (it only hurries it: see `interruptible`)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """The run was stopped by a signal. A BaseException, as KeyboardInterrupt is: no
    `except Exception` in the runner's own code swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


@dataclass
class Stops:
    """Within `interruptible`: once `cleaning_up` (set by the first signal, or by the
    caller when its own clean-up begins) no signal raises; each calls `on_repeat`, so
    nothing cuts the clean-up short."""

    cleaning_up: bool = False


@contextlib.contextmanager
def interruptible(on_repeat: Callable[[], None] = lambda: None) -> Iterator[Stops]:
    """Within the block, SIGINT or SIGTERM raises `Interrupted` once; any later one calls
    `on_repeat` (for example: kill at once rather than wait out the grace period) and
    returns, so the clean-up goes on to the end. Outside the main thread (where Python
    cannot take signals) it does nothing."""
    stops = Stops()
    if threading.current_thread() is not threading.main_thread():
        yield stops
        return

    def handle(signum: int, _: FrameType | None) -> None:
        if not stops.cleaning_up:
            stops.cleaning_up = True
            raise Interrupted(signum)
        on_repeat()

    previous = {s: signal.signal(s, handle) for s in SIGNALS}
    try:
        yield stops
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
