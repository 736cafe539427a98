"""The processes a run has started and not yet reaped, so that an interrupt stops them
all: SIGTERM to every group, SIGKILL to those left after the grace period. Once stopping,
a process that starts is refused (stopped at once) until the tasks have settled."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time

from workflows.local import processes
from workflows.local.processes import Process


class Running:
    def __init__(self) -> None:
        self.lock = threading.RLock()  # re-entrant: the interrupt handler may run while held
        self.stopping = threading.Event()  # set on an interrupt: no retry starts after it
        self._procs: set[Process] = set()
        self._stopped: set[Process] = set()  # processes an interrupt stops
        self._refusing = False

    def add(self, proc: Process) -> bool:
        """Track `proc`; False when the run is stopping (it is then stopped here)."""
        with self.lock:
            self._procs.add(proc)
            refused = self._refusing
            if refused:
                self._stopped.add(proc)
        if refused:
            processes.stop(proc)
        return not refused

    def discard(self, proc: Process) -> None:
        with self.lock:
            self._procs.discard(proc)

    def was_stopped(self, proc: Process) -> bool:
        with self.lock:
            return proc in self._stopped

    def stop_all(self, grace_s: float = processes.GRACE_S) -> None:
        """SIGTERM to every running process group, SIGKILL to those left after `grace_s`."""
        with self.lock:
            self.stopping.set()
            self._refusing = True
            procs = list(self._procs)
            self._stopped |= set(procs)
        for proc in procs:
            processes.signal_group(proc, signal.SIGTERM)
        end = time.monotonic() + grace_s
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.0, end - time.monotonic()))
        self.kill_now()

    def kill_now(self) -> None:
        """SIGKILL what an interrupt is stopping: never a process started since, such as
        the exit handler's, which a second Ctrl-C must not cut short."""
        with self.lock:
            procs = [p for p in self._procs if p in self._stopped]
        for proc in procs:
            if proc.poll() is None:
                processes.signal_group(proc, signal.SIGKILL)

    def accept(self) -> None:
        """Start processes again (the exit handler runs after an interrupt)."""
        with self.lock:
            self._refusing = False
