"""Warm starts: the processes of the tasks next in line start ahead, while the work before
them runs, and get the rest of their command line once their task is ready. A pod pays
its imports when it starts; one machine can overlap them with the work before. Which
commands can start so is the project's to say (`Hooks.warm`): such a process reads its
remaining arguments as one JSON line on stdin."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from workflows.errors import WorkflowError
from workflows.local import processes
from workflows.local.hooks import Hooks
from workflows.local.jobs import Job
from workflows.local.plan import Plan
from workflows.local.processes import Process
from workflows.local.running import Running
from workflows.local.scheduler import when_holds


@dataclass
class Warm:
    """A process started ahead of its task, waiting for its command line."""

    proc: Process
    head: list[str]  # the command it was started with
    argv: list[str]  # the rest of the command line it expects
    env: dict[str, str]


def _startable(hooks: Hooks, job: Job) -> tuple[list[str], list[str]] | None:
    """(the head, the rest) of a job whose process can start ahead: the project says its
    command can, its interpreter is there (a stock image's stand-in: once pulled) and its
    environment waits on no task's outputs."""
    if job.command is None or any("<tasks." in v for v in job.env.values()):
        return None
    split = hooks.warm(job.command)
    return split if split is not None and Path(split[0][0]).is_file() else None


class WarmStarts:
    def __init__(self, plan: Plan, running: Running, max_waiting: int) -> None:
        hooks = plan.context.hooks
        self.plan, self.running, self.max_waiting = plan, running, max_waiting
        self.previews = {n: j for n, j in plan.checked.items() if _startable(hooks, j)}
        self._waiting: dict[str, Warm] = {}  # ready for their task
        self._claimed: dict[str, Warm] = {}  # taken by their task, staging its inputs
        self.ran: set[str] = set()  # tasks whose first attempt ran in a warm process

    def ahead(
        self, pending: list[str], started: Collection[str], params: Mapping[str, str]
    ) -> None:
        """Start the processes of the tasks next in line (`pending`, by critical path), up
        to `max_waiting` at once: tasks whose dependencies have all started (or are warm)
        and whose `when`, if any, already holds."""
        with self.running.lock:
            gone = [name for name, w in self._waiting.items() if w.proc.poll() is not None]
        for name in gone:  # it died importing: its task starts cold
            self.discard(name)
        with self.running.lock:
            begun = set(started) | set(self._waiting)
        for name in pending:
            with self.running.lock:
                if len(self._waiting) >= self.max_waiting:
                    return
            task, preview = self.plan.tasks[name], self.previews.get(name)
            if name in begun or preview is None:
                continue
            if task.depends is not None and not task.depends.tasks <= begun:
                continue
            try:
                if not when_holds(task, params):
                    continue
            except WorkflowError:  # it waits on outputs not known yet
                continue
            self._start(preview)
            begun.add(name)

    def _start(self, job: Job) -> None:
        head, argv = _startable(self.plan.context.hooks, job) or ([], [])
        try:
            job.fresh_pod()  # before the process: an import may write to its home
            job.log.parent.mkdir(parents=True, exist_ok=True)
            job.log.write_bytes(b"")
            with job.log.open("ab") as log:  # appending: the runner writes to it too
                proc = processes.start(head, log, job.process_env(), stdin=subprocess.PIPE)
        except OSError:  # e.g. no such interpreter: the task starts cold, and says why
            return
        try:
            with self.running.lock:
                self._waiting[job.task] = Warm(proc, head, argv, job.process_env())
            accepted = self.running.add(proc)
        except BaseException:  # an interrupt before it was recorded: leave none behind
            processes.signal_group(proc, signal.SIGKILL)
            proc.wait()
            raise
        if not accepted:
            self.discard(job.task)

    def claim(self, job: Job) -> bool:
        """Take the task's warm process for its first attempt, if it is alive and will run
        the job's command in the job's environment; otherwise stop it."""
        with self.running.lock:
            warm = self._waiting.pop(job.task, None)
            if warm is None:
                return False
            self._claimed[job.task] = warm
        split = _startable(self.plan.context.hooks, job)
        alive = warm.proc.poll() is None
        if split is not None and split[0] == warm.head and warm.env == job.process_env() and alive:
            warm.argv = split[1]
            return True
        self.discard(job.task)
        return False

    def hand_over(self, task: str) -> Process | None:
        """The claimed process of `task`, given the rest of its command line; None if there
        is none or it is gone (it failed to import)."""
        with self.running.lock:
            warm = self._claimed.pop(task, None)
        if warm is None:
            return None
        assert warm.proc.stdin is not None
        try:
            warm.proc.stdin.write(json.dumps(warm.argv).encode() + b"\n")
            warm.proc.stdin.close()
        except OSError:
            self._stop(warm)
            return None
        with self.running.lock:
            self.ran.add(task)
        return warm.proc

    def is_claimed(self, task: str) -> bool:
        with self.running.lock:
            return task in self._claimed

    def discard(self, task: str | None = None) -> None:
        """Stop the warm process of `task` that will not run (None: every waiting one)."""
        with self.running.lock:
            if task is None:
                idle, claimed, self._waiting = self._waiting, None, {}
            else:
                idle = {task: self._waiting.pop(task)} if task in self._waiting else {}
                claimed = self._claimed.pop(task, None)
        for name in idle:  # its task never started: its log would hold the warm lines only
            self.plan.context.log_path(name).unlink(missing_ok=True)
        for warm in [*idle.values(), *([claimed] if claimed else [])]:
            self._stop(warm)

    def _stop(self, warm: Warm) -> None:
        processes.signal_group(warm.proc, signal.SIGKILL)  # it has only imported
        warm.proc.wait()
        if warm.proc.stdin is not None and not warm.proc.stdin.closed:
            with contextlib.suppress(OSError):
                warm.proc.stdin.close()
        self.running.discard(warm.proc)
