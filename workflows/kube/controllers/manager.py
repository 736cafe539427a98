"""The controller manager: what controller-runtime's Manager does for the operators of a
cluster, for the controllers of the local API. One background thread runs every
controller's `reconcile()` whenever the store changes (`Objects.events`) and at least
every `period_s`, since processes exit and deadlines pass without a store event.

A controller reconciles everything it owns on each call, as a level-triggered reconciler
does (it reads the store, never the events), so a missed or merged event costs nothing.
An exception in one reconcile is logged and the loop goes on, as a Reconcile error is
requeued on a cluster. `stop()` ends the loop, then closes every controller, which stops
the processes it runs.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from workflows.kube.objects import Objects

PERIOD_S = 0.2  # how stale a process exit or a passed deadline may be in the store

T = TypeVar("T")
Log = Callable[[str], None]


class Controller(Protocol):
    def reconcile(self) -> None:
        """Bring what the controller owns closer to what the store asks for."""

    def close(self) -> None:
        """Stop whatever the controller runs (its processes)."""


def log_to(path: Path) -> Log:
    """A log callback that appends each message, as a line, to `path`."""
    lock = threading.Lock()

    def write(message: str) -> None:
        with lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as out:
                out.write(message.rstrip("\n") + "\n")

    return write


def wait_for(
    objects: Objects, predicate: Callable[[Objects], T], timeout_s: float, what: str = ""
) -> T:
    """Wait until `predicate(objects)` is truthy and return it; it is evaluated again after
    every store change. TimeoutError after `timeout_s`, naming `what`."""
    deadline = time.monotonic() + timeout_s
    while True:
        version = objects.version  # read before the predicate: no change slips between
        found = predicate(objects)
        if found:
            return found
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"not so after {timeout_s:g} s: {what or repr(predicate)}")
        objects.events(version, timeout_s=left)


class Manager:
    """Runs `controllers` over `objects` in one thread; `log` gets each reconcile error."""

    def __init__(
        self,
        objects: Objects,
        controllers: Sequence[Controller],
        log: Log,
        period_s: float = PERIOD_S,
    ) -> None:
        self.objects = objects
        self.controllers = list(controllers)
        self.period_s = period_s
        self._log = log
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error: dict[int, str] = {}

    def start(self) -> Manager:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="controllers", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """End the loop (after the reconcile under way), then close every controller."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        for controller in self.controllers:
            try:
                controller.close()
            except Exception:  # one controller's failure must not leave others running
                self._log(f"{type(controller).__name__}.close failed:\n{traceback.format_exc()}")

    def __enter__(self) -> Manager:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            version = self.objects.version
            for controller in self.controllers:
                if self._stopping.is_set():
                    return
                self._reconcile(controller)
            # Wakes on the next change, the changes the reconciles made included.
            self.objects.events(version, timeout_s=self.period_s)

    def _reconcile(self, controller: Controller) -> None:
        try:
            controller.reconcile()
        except Exception:
            error = traceback.format_exc()
            # A reconcile that keeps failing the same way is logged once, not 5 times a second.
            if self._last_error.get(id(controller)) != error:
                self._log(f"{type(controller).__name__}.reconcile failed:\n{error}")
            self._last_error[id(controller)] = error
        else:
            self._last_error.pop(id(controller), None)
