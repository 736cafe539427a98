"""What `python -m workflows run` prints while the run goes on.

A line per settled task, as always. While tasks run: on a terminal, one line per running
task under those, redrawn in place with its latest progress and elapsed time; elsewhere
(CI, a log file) a plain line for each progress line a task writes. `quiet` prints neither: the
caller prints only the final lines.
"""

from __future__ import annotations

import shutil
import threading
from typing import TextIO

from workflows.local.live import LiveTask


class Display:
    def __init__(self, stream: TextIO, *, quiet: bool = False, tty: bool | None = None) -> None:
        self.stream, self.quiet = stream, quiet
        self.tty = stream.isatty() if tty is None else tty
        self.lock = threading.Lock()
        self.running: list[LiveTask] = []
        self.drawn = 0  # lines of the live block now on the terminal

    def line(self, text: str) -> None:
        if self.quiet:
            return
        with self.lock:
            self._erase()
            self.stream.write(text + "\n")
            self._draw()
            self.stream.flush()

    def live(self, running: list[LiveTask]) -> None:
        if self.quiet:
            return
        with self.lock:
            if self.tty:
                self.running = running
                self._erase()
                self._draw()
            else:
                for name, _, seconds, new in running:
                    for note in new:
                        self.stream.write(f"{name}  {note}  ({seconds:.0f} s)\n")
            self.stream.flush()

    def _erase(self) -> None:
        if self.drawn:  # to the start of the block's first line, then clear below
            self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0

    def _draw(self) -> None:
        if not self.tty:
            return
        width = shutil.get_terminal_size().columns - 1  # a wrapped line would break _erase
        for name, note, seconds, _ in self.running:
            self.stream.write(f"{name}  {'Running':<9}  {seconds:7.1f}s  {note}"[:width] + "\n")
        self.drawn = len(self.running)
