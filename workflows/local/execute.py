"""Executing a plan: tasks in `depends` order, `when`, up to `max_parallel` at once, each a
subprocess (or a stand-in), with its log, outputs and artifacts; then the exit handler.
While tasks run, their progress (the steps' `progress: N/M` lines, textcnn.progress) goes
to `on_live`; each step's last ARGO_PROGRESS_FILE value goes to run.json, as Argo keeps a
node's progress. Steps of the project's CLI start warm: their processes import while the
work before them runs (`Run._warm_ahead`)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textcnn import progress
from textcnn.errors import NOT_RETRIED, FinalError, InputError
from textcnn.params import ParamsError
from workflows.errors import WorkflowError
from workflows.expressions import evaluate_retry, evaluate_when
from workflows.local import images
from workflows.local.folder import WORKFLOW, run_folder
from workflows.local.mutexes import holding
from workflows.local.plan import (
    DEADLINE_EXCEEDED,
    ERRORED,
    FAILED,
    OMITTED,
    SKIPPED,
    SUCCEEDED,
    InMemory,
    Job,
    LiveTask,
    Outcome,
    Plan,
    StandIn,
    StandInContext,
    generate_name,
)
from workflows.local.result import RunResult
from workflows.local.signals import Interrupted, interruptible
from workflows.local.store import open_store
from workflows.local.substitution import substitute

TAIL_LINES = 20
GRACE_S = 10.0  # a stopped step's time to exit after SIGTERM, as a pod's grace period
POLL_S = 0.5  # how often running tasks' logs are read for progress
# Where Argo's executor points ARGO_PROGRESS_FILE in the main container.
PROGRESS_PATH = "/var/run/argo/progress"


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _process_env(job: Job) -> dict[str, str]:
    # As Argo's executor does for the main container.
    return {**job.env, progress.PROGRESS_FILE: str(job.pod_dir / PROGRESS_PATH.lstrip("/"))}


@dataclass
class Warm:
    """A step process started ahead of its task, waiting for its command line."""

    proc: subprocess.Popen[bytes]
    command: list[str]  # the head of what it will run: `python -m textcnn STEP`
    env: dict[str, str]


def _step_error(log: Path, offset: int) -> str:
    """The failed step's own `error: ...` line (the textcnn CLI's convention) in its log
    from `offset` (this attempt's output), if any, so the reason shows above the log's
    library noise."""
    with log.open("rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    errors = [line for line in text.splitlines() if line.startswith("error: ")]
    return f" ({errors[-1]})" if errors else ""


class Run(Plan):
    """A plan being carried out: what each task did, and the processes running now."""

    artifact_keys: dict[str, str]  # `tasks.T.outputs.artifacts.A` -> key
    status: dict[str, str]
    steps: dict[str, dict[str, Any]]
    artifacts: dict[str, str]  # artifact name -> URI
    procs: set[subprocess.Popen[bytes]]
    lock: threading.RLock  # re-entrant: the interrupt handler may run while it is held
    stopping: threading.Event  # set on an interrupt
    warm_start: bool = True  # start steps of our CLI ahead (_warm_ahead)
    locks_dir: Path  # where the workflow's mutexes are held (workflows.local.mutexes)
    # Tasks that `--resume` always runs again, with every task after them: their outcome
    # depends on the world outside the run (what serves an endpoint now).
    rerun: frozenset[str] = frozenset()
    record: Mapping[str, Any]  # what run.json keeps besides the run's own account

    def _begin(self) -> None:
        self.artifact_keys, self.status, self.steps, self.artifacts = {}, {}, {}, {}
        self.procs, self.lock, self.stopping = set(), threading.RLock(), threading.Event()
        self.stopped: set[subprocess.Popen[bytes]] = set()  # processes an interrupt stops
        self.refusing = False  # while stopping: a process that starts is stopped at once
        # Running tasks: name -> [log, bytes of it read, latest progress, start].
        self.live: dict[str, list[Any]] = {}
        self.live_lock = threading.Lock()
        # Warm step processes (under `lock`): waiting for their task to be ready; claimed by
        # their task, which is staging its inputs; the tasks that ran in one.
        self.warm: dict[str, Warm] = {}
        self.claimed: dict[str, Warm] = {}
        self.ran_warm: set[str] = set()

    def _publish(self) -> None:
        """Read what running tasks' logs added, and hand their progress to on_live."""
        if self.on_live is None:
            return
        with self.live_lock:
            states: list[LiveTask] = []
            for name, entry in list(self.live.items()):
                log, offset, _, start = entry
                new: list[str] = []
                with contextlib.suppress(OSError), Path(log).open("rb") as f:
                    f.seek(offset)
                    chunk = f.read()
                    end = chunk.rfind(b"\n") + 1  # whole lines only
                    entry[1] = offset + end
                    for line in chunk[:end].decode(errors="replace").splitlines():
                        if (found := progress.parse(line)) is not None:
                            done, total, note = found
                            new.append(f"{done}/{total} {note}".rstrip())
                if new:
                    entry[2] = new[-1]
                seconds = time.monotonic() - start
                states.append((name.ljust(self.width), entry[2], seconds, tuple(new)))
            try:
                self.on_live(states)
            except Exception:  # e.g. a closed stdout: the display's loss, not the run's
                traceback.print_exc()
                self.on_live = None

    def _watch(self, stop: threading.Event) -> None:
        while not stop.wait(POLL_S):
            self._publish()

    def run(self, earlier: Mapping[str, Any] | None = None) -> RunResult:
        """Run the DAG, then the exit handler, and write run.json. With `earlier` (the
        run.json of this workflow's failed run), run as `argo retry` does: its succeeded
        and skipped tasks stand, with their outputs; the others run again."""
        self._begin()
        pending = self._resume(earlier) if earlier else list(self.tasks)
        # Ready tasks start by critical path when slots are short (Argo's controller has no
        # order; the DAG's own order would start two side branches before the long chain).
        pending.sort(key=lambda name: -self.tasks[name].height)
        running: dict[Future[Outcome], str] = {}
        failed = False
        watching = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(watching,), daemon=True)
        watcher.start()
        with (
            interruptible(on_repeat=self._kill_now) as stops,
            ThreadPoolExecutor(max_workers=self.max_parallel) as pool,
            contextlib.ExitStack() as cleanup,
        ):
            cleanup.callback(watching.set)
            cleanup.callback(self._discard_warm)
            try:
                cleanup.enter_context(
                    holding(self.locks_dir, self.mutexes, self.workflow_name, self.on_progress)
                )
            except Interrupted as stop:  # Pending, as on a cluster: nothing ran, no exit handler
                self._omit(pending, f"not started: interrupted by {stop.name} waiting for a mutex")
                result = self._result(FAILED, "interrupted")
                result.extra["interrupted"] = {"signal": stop.name, "stopped": []}
                result.write(self.output_dir / "run.json")
                return result
            try:
                while True:
                    while not failed and (ready := self._next(pending, len(running))):
                        name, job = ready
                        pending.remove(name)
                        if isinstance(job, Job):
                            running[pool.submit(self._execute, job)] = name
                        else:
                            failed |= self._finish(name, job)
                    if failed:
                        self._discard_warm()  # nothing more starts
                    elif self.warm_start:
                        self._warm_ahead(pending, running.values())
                    if not running:
                        break
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        failed |= self._finish(running.pop(future), future.result())
                self._omit(pending, "not started: the workflow failed")
                stops.cleaning_up = True  # a signal now cannot stop the exit handler
                result = self._run_exit_handler(self._dag_result(failed))
            except Interrupted as stop:
                result = self._interrupted(stop, running, pending)
            except BaseException:  # e.g. the disk is full: leave no step running
                self._kill_all()
                raise
            result.write(self.output_dir / "run.json")
        return result

    def _interrupted(
        self, stop: Interrupted, running: Mapping[Future[Outcome], str], pending: list[str]
    ) -> RunResult:
        """Stop every process, settle the tasks, run the exit handler (the workflow has
        Failed), and say what was stopped. A second signal only hurries this along."""
        self.on_progress(f"{stop.name}: stopping {', '.join(running.values()) or 'nothing'}")
        self._kill_all()
        for future, name in running.items():
            self._finish(name, future.result())
        with self.lock:
            self.refusing = False  # the exit handler runs
        self._omit(pending, f"not started: interrupted by {stop.name}")
        result = self._run_exit_handler(self._result(FAILED, "interrupted"))
        result.extra["interrupted"] = {"signal": stop.name, "stopped": sorted(running.values())}
        return result

    def _resume(self, earlier: Mapping[str, Any]) -> list[str]:
        """Take over the earlier run's succeeded and skipped tasks; return the rest. Taken
        again, with every task after them: the tasks in `rerun`, those whose work lived
        in the runner (`InMemory`), and those an artifact of which is gone from the store."""
        steps = earlier.get("steps", {})
        again = set(self.rerun)
        for name, task in self.tasks.items():
            step = steps.get(name, {})
            if step.get("status") not in (SUCCEEDED, SKIPPED) or isinstance(
                task.stand_in, InMemory
            ):
                again.add(name)
            elif missing := [
                a for a, key in self._kept(name, step).items() if not self.store.names(key)
            ]:
                self.on_progress(
                    f"{name:<{self.width}}  runs again: its artifact {missing[0]!r} is gone "
                    f"from {self.store.root}"
                )
                again.add(name)
        again |= {n for n, t in self.tasks.items() if t.ancestors & again}
        for name in self.tasks:
            if name in again:
                continue
            step = steps[name]
            self.status[name] = step["status"]
            self.steps[name] = {**step, "resumed": True}
            for key, value in step.get("outputs", {}).items():
                self.params[f"tasks.{name}.outputs.parameters.{key}"] = value
            for art, key in step.get("artifacts", {}).items():
                self.artifact_keys[f"tasks.{name}.outputs.artifacts.{art}"] = key
                self.artifacts[art] = self.store.uri(key)
            self.on_progress(f"{name:<{self.width}}  {step['status']:<9}  (earlier run)")
        return [name for name in self.tasks if name in again]

    def _kept(self, name: str, step: Mapping[str, Any]) -> Mapping[str, str]:
        """The artifacts of a task the earlier run kept, each at the key its template
        declares, and its output parameters strings: run.json is data, and cannot point
        the tasks after it at other objects."""
        kept, outputs = step.get("artifacts", {}), step.get("outputs", {})
        if not isinstance(kept, dict) or not isinstance(outputs, dict):
            raise WorkflowError(f"the earlier run's task {name!r} is garbled in its run.json")
        if not all(isinstance(v, str) for v in outputs.values()):
            raise WorkflowError(f"the earlier run's task {name!r} has outputs that are no strings")
        template = self.tasks[name].template
        declared = {
            a["name"]: substitute(self.output_key(name, a), self.globals, f"task {name!r}")
            for a in template.get("outputs", {}).get("artifacts", [])
        }
        for art, key in kept.items():
            if declared.get(art) != key:
                raise WorkflowError(
                    f"the earlier run's task {name!r} names artifact {str(art)[:80]!r} at "
                    f"{str(key)[:200]!r}, not where its template puts it "
                    f"({declared.get(art)!r}): its run.json was changed; start a new run"
                )
        return kept

    def _dag_result(self, failed: bool) -> RunResult:
        if failed:
            failures = [n for n, s in self.status.items() if s in (FAILED, ERRORED)]
            return self._result(FAILED, f"task(s) failed: {', '.join(failures)}")
        try:
            outputs = self._dag_outputs(self.params)
        except WorkflowError as e:  # e.g. an output of a task that was skipped
            self.on_progress(f"workflow failed: {e}")
            return self._result(FAILED, str(e))
        return self._result(SUCCEEDED, "", outputs)

    def _run_exit_handler(self, result: RunResult) -> RunResult:
        """Argo's `onExit`: runs after the DAG whatever its outcome, with
        `{{workflow.status}}` and `{{workflow.failures}}`; if it fails, so does the run."""
        task = self.exit_handler
        if task is None:
            return result
        failures = [
            {
                "displayName": n,
                "templateName": self.tasks[n].template["name"],
                "phase": s,
                "message": self.steps[n].get("message", ""),
            }
            for n, s in self.status.items()
            if s in (FAILED, ERRORED)
        ]
        try:
            outcome = self._execute(self._prepare_exit_handler(result.status, json.dumps(failures)))
        except WorkflowError as e:
            outcome = Outcome(ERRORED, message=str(e))
        if self._finish(task.name, outcome) and result.status == SUCCEEDED:
            return self._result(FAILED, f"exit handler {task.name!r} failed")
        return result

    def _next(self, pending: list[str], busy: int) -> tuple[str, Job | Outcome] | None:
        """The next task to start (a job) or to settle (Omitted, Skipped, Errored), if any."""
        for name in pending:
            task = self.tasks[name]
            if task.depends is not None:
                if any(d not in self.status for d in task.depends.tasks):
                    continue
                if not task.depends.holds(self.status):
                    return name, Outcome(OMITTED, message="depends condition not met")
            scope = self._visible(task, self.params)
            try:
                when = task.spec.get("when")
                if when and not evaluate_when(substitute(when, scope, f"task {name!r} when")):
                    return name, Outcome(SKIPPED, message=f"when {when!r} was false")
                if busy < self.max_parallel:
                    return name, self._prepare(task, scope, self._visible(task, self.artifact_keys))
            except WorkflowError as e:
                self._discard_warm(name)
                self._log_path(name).parent.mkdir(parents=True, exist_ok=True)
                self._log_path(name).write_text(f"error: {e}\n")
                return name, Outcome(ERRORED, message=str(e), ran=True)
        return None

    def _warm_ahead(self, pending: list[str], running: Collection[str]) -> None:
        """Start the step processes of the tasks next in line, by critical path, up to
        `max_parallel` waiting at once: tasks whose dependencies have all started (or are
        warm themselves) and whose `when`, if any, already holds. Each imports its step
        while the work before it runs, and gets its command line once its inputs are
        staged. A pod pays its imports when it starts; one machine can overlap them with
        the work before."""
        with self.lock:
            gone = [name for name, w in self.warm.items() if w.proc.poll() is not None]
        for name in gone:  # it died importing: its task starts cold
            self._discard_warm(name)
        with self.lock:  # tasks that have started: settled, running, or warm
            started = set(self.status) | set(running) | set(self.warm)
        for name in pending:
            with self.lock:
                if len(self.warm) >= self.max_parallel:
                    return
            preview, task = self.previews.get(name), self.tasks[name]
            if name in started or preview is None:
                continue
            if task.depends is not None and not task.depends.tasks <= started:
                continue
            if when := task.spec.get("when"):
                try:
                    scope = self._visible(task, self.params)
                    if not evaluate_when(substitute(when, scope, f"task {name!r} when")):
                        continue
                except WorkflowError:  # it waits on outputs not known yet
                    continue
            self._start_warm(preview)
            started.add(name)

    def _fresh_pod(self, job: Job) -> None:
        """The task's pod folder, empty, as a new pod has it."""
        shutil.rmtree(job.pod_dir, ignore_errors=True)
        for root in job.roots:  # a pod has /tmp and the like; deeper folders it must make
            (job.pod_dir / Path(root).parts[1]).mkdir(parents=True, exist_ok=True)
        for folder in job.volumes:  # a mounted volume exists, empty or not
            folder.mkdir(parents=True, exist_ok=True)

    def _start_warm(self, job: Job) -> None:
        assert job.command is not None
        try:
            self._fresh_pod(job)  # before the process: importing Keras writes KERAS_HOME
            job.log.parent.mkdir(parents=True, exist_ok=True)
            env = _process_env(job)
            job.log.write_bytes(b"")
            with job.log.open("ab") as log:  # appending: the runner writes to it too
                proc = subprocess.Popen(
                    [*job.command[:3], "--warm", job.command[3]],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.PIPE,
                    env=env,
                    start_new_session=True,
                )
        except OSError:  # e.g. no such interpreter: the task starts cold, and says why
            return
        try:
            with self.lock:
                self.procs.add(proc)
                self.warm[job.task] = Warm(proc, job.command[:4], env)
                refused = self.refusing
        except BaseException:  # an interrupt before it was recorded: leave none behind
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
            raise
        if refused:
            self._discard_warm(job.task)

    def _claim_warm(self, job: Job) -> bool:
        """Take the task's warm process for its first attempt, if it is alive and will run
        the job's command head in the job's environment; otherwise stop it."""
        with self.lock:
            warm = self.warm.pop(job.task, None)
            if warm is None:
                return False
            self.claimed[job.task] = warm
        if (
            job.command is not None
            and warm.command == job.command[:4]
            and warm.env == _process_env(job)
            and warm.proc.poll() is None
        ):
            return True
        self._discard_warm(job.task)
        return False

    def _discard_warm(self, task: str | None = None) -> None:
        """Stop the warm process of `task` that will not run (None: every waiting one)."""
        with self.lock:
            if task is None:
                idle, claimed, self.warm = self.warm, None, {}
            else:
                idle = {task: self.warm.pop(task)} if task in self.warm else {}
                claimed = self.claimed.pop(task, None)
        for name in idle:  # its task never started: its log would hold the warm lines only
            self._log_path(name).unlink(missing_ok=True)
        for warm in [*idle.values(), *([claimed] if claimed else [])]:
            self._stop_warm(warm)

    def _stop_warm(self, warm: Warm) -> None:
        if warm.proc.poll() is None:  # once reaped, its pid may be another's
            _signal_group(warm.proc, signal.SIGKILL)  # it has only imported
        warm.proc.wait()
        if warm.proc.stdin is not None:
            with contextlib.suppress(OSError):
                warm.proc.stdin.close()
        with self.lock:
            self.procs.discard(warm.proc)

    def _execute(self, job: Job) -> Outcome:
        """Run one task (in a worker thread): stage inputs, run, collect outputs."""
        start = time.monotonic()
        if not self._claim_warm(job):  # else its log holds the warm process's lines
            job.log.parent.mkdir(parents=True, exist_ok=True)
            job.log.write_text("")
        with self.live_lock:
            self.live[job.task] = [job.log, 0, "", start]
        try:
            return self._attempts(job, start)
        finally:
            self._discard_warm(job.task)  # one its attempt did not reach
            try:
                self._publish()  # the lines it wrote last
            finally:
                with self.live_lock:
                    del self.live[job.task]

    def _attempts(self, job: Job, start: float) -> Outcome:
        # Append mode: a stand-in may append to the same log while the runner holds it.
        with job.log.open("a") as log:
            retries = 0
            while True:
                began = time.monotonic()
                try:
                    outcome = self._attempt(job, log)
                except Exception as e:  # e.g. a storage error: the task errors, the run goes on
                    traceback.print_exc(file=log)
                    outcome = Outcome(ERRORED, message=f"{type(e).__name__}: {e}")
                if outcome.message and outcome.status != SUCCEEDED:
                    log.write(f"error: {outcome.message}\n")
                try:
                    delay = self._retry_delay(
                        job, outcome, retries, time.monotonic() - began, time.monotonic() - start
                    )
                except WorkflowError as e:  # the expression cannot be evaluated
                    outcome, delay = Outcome(ERRORED, message=f"retryStrategy: {e}"), None
                    log.write(f"error: {outcome.message}\n")
                if delay is None or self.stopping.wait(delay):
                    break
                retries += 1
                log.write(
                    f"retry {retries} of {job.retry.limit if job.retry else 0} after {delay:g} s\n"
                )
                log.flush()
        outcome.seconds, outcome.ran, outcome.retries = time.monotonic() - start, True, retries
        outcome.metrics = self._metrics(job, outcome)
        return outcome

    @staticmethod
    def _metrics(job: Job, outcome: Outcome) -> list[dict[str, Any]]:
        """The task's Prometheus metrics as Argo's controller emits them when it ends:
        `when` and the value resolved with its status, duration and outputs."""
        scope = {
            **job.scope,
            "status": outcome.status,
            "duration": f"{outcome.seconds:.3f}",
            **{f"outputs.parameters.{k}": v for k, v in outcome.outputs.items()},
        }
        emitted = []
        for metric in job.metrics:
            where = f"task {job.task!r} metric {metric.get('name')!r}"
            try:
                when = metric.get("when")
                if when and not evaluate_when(substitute(when, scope, where)):
                    continue
                (kind,) = [k for k in ("gauge", "counter", "histogram") if k in metric]
                value = float(substitute(str(metric[kind]["value"]), scope, where))
                labels = {
                    str(label["key"]): substitute(str(label["value"]), scope, where)
                    for label in metric.get("labels", [])
                }
            except (WorkflowError, ValueError, KeyError, TypeError, AttributeError) as e:
                # A metric Argo cannot evaluate: it logs it and emits nothing.
                emitted.append({"name": metric.get("name"), "error": str(e)})
                continue
            emitted.append({"name": metric["name"], kind: value, "labels": labels})
        return emitted

    @staticmethod
    def _retry_delay(
        job: Job, outcome: Outcome, retries: int, duration: float, elapsed: float
    ) -> float | None:
        """Seconds to wait before the next attempt, as Argo's retryStrategy decides; None:
        no retry."""
        retry = job.retry
        if retry is None or outcome.status == SUCCEEDED or retries >= retry.limit:
            return None
        covered = {
            "Always": (FAILED, ERRORED),
            "OnFailure": (FAILED,),
            "OnError": (ERRORED,),
            "OnTransientError": (ERRORED,),
        }.get(retry.policy, ())
        if outcome.status not in covered:
            return None
        if retry.expression and not evaluate_retry(
            retry.expression, outcome.exit_code, outcome.status, duration
        ):
            return None
        delay = retry.duration * retry.factor**retries
        if retry.max_duration is not None and elapsed + delay > retry.max_duration:
            return None
        return delay

    def _attempt(self, job: Job, log: Any) -> Outcome:
        with self.lock:
            warm = job.task in self.claimed
        if not warm:  # a warm process's pod folder was made fresh before it started
            self._fresh_pod(job)
        if job.command is not None:
            images.pull(str(job.template.get("container", {}).get("image", "")), self.output_dir)
        for name, key, path in job.inputs:
            try:
                self.store.download(key, path)
            except FileNotFoundError:
                return Outcome(
                    ERRORED,
                    message=f"input artifact {name!r}: key {key!r} not "
                    f"found in {self.store.root} (task {job.task!r})",
                )
        returned: dict[str, str] = {}
        max_rss_mib: float | None = None
        reported: str | None = None
        if job.command is not None:
            log.write(f"$ {shlex.join(job.command)}\n")
            log.flush()
            offset = log.tell()
            code, max_rss_mib, late, stopped = self._run_process(job, log)
            with contextlib.suppress(OSError):
                reported = (job.pod_dir / PROGRESS_PATH.lstrip("/")).read_text().strip()
            if stopped:
                return Outcome(
                    FAILED,
                    message="stopped: the run was interrupted",
                    exit_code=code,
                    progress=reported,
                )
            if late:
                return Outcome(
                    FAILED,
                    message=f"{DEADLINE_EXCEEDED} ({job.deadline_s:g} s)",
                    max_rss_mib=max_rss_mib,
                    exit_code=code,
                    progress=reported,
                )
            if code != 0:
                message = f"exit code {code}{_step_error(job.log, offset)}"
                return Outcome(
                    FAILED,
                    message=message,
                    max_rss_mib=max_rss_mib,
                    exit_code=code,
                    progress=reported,
                )
        else:
            assert job.stand_in is not None
            resource = job.template.get("resource", {})
            context = StandInContext(
                job.task,
                job.template,
                resource.get("manifest"),
                job.parameters,
                self.workflow_name,
                self.output_dir,
                job.pod_dir,
                job.log,
                self.store,
                job.env,
                self.stopping,
                time.monotonic() + job.deadline_s,
            )
            try:
                returned = {k: str(v) for k, v in (job.stand_in(context) or {}).items()}
            except WorkflowError as e:  # a verdict (rejected, stopped): no traceback
                return Outcome(FAILED, message=str(e))
            except (InputError, ParamsError, FinalError) as e:
                # The step code's verdicts: the exit code its pod would give (textcnn.cli),
                # which the retryStrategy does not retry.
                return Outcome(FAILED, message=str(e), exit_code=NOT_RETRIED)
            except Exception as e:  # the stand-in's failure is the task's failure
                traceback.print_exc(file=log)
                return Outcome(
                    FAILED, message=f"stand-in raised {type(e).__name__}: {e}", exit_code=1
                )
        outputs = dict(returned)
        for name, param_path, default in job.out_params:
            if param_path is not None and param_path.is_file():
                value = param_path.read_text()
            elif name in returned:
                continue
            elif default is not None:
                value = default
            else:
                where = (
                    f"written to {param_path}"
                    if param_path is not None
                    else "returned by the stand-in"
                )
                return Outcome(ERRORED, message=f"output parameter {name!r} was not {where}")
            outputs[name] = value.removesuffix("\n")  # Argo trims one trailing newline
        keys = {}
        for name, key, path in job.outputs:
            if not path.exists():
                return Outcome(ERRORED, message=f"output artifact {name!r}: {path} was not written")
            self.store.upload(path, key)
            keys[name] = key
        return Outcome(
            SUCCEEDED, outputs=outputs, artifacts=keys, max_rss_mib=max_rss_mib, progress=reported
        )

    def _run_process(self, job: Job, log: Any) -> tuple[int, float | None, bool, bool]:
        """Run the job's command: (exit code, peak resident memory in MiB if known, whether
        it was stopped at its deadline, whether it was stopped by an interrupt)."""
        assert job.command is not None
        with self.lock:
            warm = self.claimed.pop(job.task, None)
        if warm is not None and self._hand_over(warm, job.command[3:]):
            proc = warm.proc
            with self.lock:
                self.ran_warm.add(job.task)
        else:
            if warm is not None:  # it died importing: the task starts cold
                self._stop_warm(warm)
            # Own session: Ctrl-C reaches the runner, which then kills whole process groups.
            proc = subprocess.Popen(
                job.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=_process_env(job),
                start_new_session=True,
            )
        with self.lock:
            self.procs.add(proc)
            refused = self.refusing
        if refused:  # a task's process, started as the run was interrupted
            self.stopped.add(proc)
            self._stop(proc)
        late = threading.Event()

        def stop_late() -> None:
            late.set()
            self._stop(proc)

        timer = threading.Timer(job.deadline_s, stop_late) if job.deadline_s else None
        if timer:
            timer.start()
        try:
            # wait4 rather than wait: the kernel reports the process's peak RSS (KiB on Linux).
            # Linux starts that count at the runner's own resident size when it forks the
            # child (~75 MiB under `python -m workflows run`): a floor under small steps.
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            rss: float | None = usage.ru_maxrss / 1024
        except ChildProcessError:  # already reaped by a stop's wait
            proc.wait()
            rss = None
        finally:
            if timer:
                timer.cancel()
            with self.lock:
                self.procs.discard(proc)
        code = proc.returncode
        if code < 0:  # killed by a signal: Kubernetes reports 128 + the signal
            code = 128 - code
        return code, rss, late.is_set(), proc in self.stopped

    @staticmethod
    def _hand_over(warm: Warm, argv: list[str]) -> bool:
        """Give a warm process its command line; False if it is gone."""
        assert warm.proc.stdin is not None
        try:
            warm.proc.stdin.write(json.dumps(argv).encode() + b"\n")
            warm.proc.stdin.close()
        except OSError:  # it is gone (it failed to import)
            return False
        return True

    def _kill_all(self, grace_s: float = GRACE_S) -> None:
        """SIGTERM to every running process group, SIGKILL to those left after `grace_s`."""
        with self.lock:
            self.stopping.set()  # no retry starts after this
            self.refusing = True  # nor a process, until the tasks have settled
            procs = list(self.procs)
            self.stopped |= set(procs)
        for proc in procs:
            _signal_group(proc, signal.SIGTERM)
        end = time.monotonic() + grace_s
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.0, end - time.monotonic()))
        self._kill_now()

    def _kill_now(self) -> None:
        """SIGKILL what an interrupt is stopping: never a process started since, such as
        the exit handler's, which a second Ctrl-C must not cut short."""
        with self.lock:
            procs = [p for p in self.procs if p in self.stopped]
        for proc in procs:
            if proc.poll() is None:
                _signal_group(proc, signal.SIGKILL)

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM to the process group, then SIGKILL after a grace period."""
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(GRACE_S)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)

    def _finish(self, name: str, outcome: Outcome) -> bool:
        """Record a settled task and report it; True when it failed the workflow."""
        self.status[name] = outcome.status
        log = self._log_path(name) if outcome.ran else None
        step: dict[str, Any] = {
            "status": outcome.status,
            "seconds": round(outcome.seconds, 3),
            "log": str(log) if log else None,
            "outputs": outcome.outputs,
        }
        if outcome.message:
            step["message"] = outcome.message
        if outcome.retries:
            step["retries"] = outcome.retries
        if outcome.artifacts:
            step["artifacts"] = outcome.artifacts  # name -> key, for --resume
        if outcome.max_rss_mib is not None:
            step["max_rss_mib"] = round(outcome.max_rss_mib, 1)
        if name in self.ran_warm:
            step["warm_start"] = True  # its first attempt's process imported ahead
        else:
            self._discard_warm(name)  # e.g. omitted: its warm process will not run
        if outcome.progress:
            step["progress"] = outcome.progress
        if outcome.metrics:
            step["metrics"] = outcome.metrics  # what Argo's controller would export
        self.steps[name] = step
        if outcome.status == SUCCEEDED:
            for key, value in outcome.outputs.items():
                self.params[f"tasks.{name}.outputs.parameters.{key}"] = value
            for art, key in outcome.artifacts.items():
                self.artifact_keys[f"tasks.{name}.outputs.artifacts.{art}"] = key
                self.artifacts[art] = self.store.uri(key)
        self._publish()  # without this task
        self.on_progress(f"{name:<{self.width}}  {outcome.status:<9}  {outcome.seconds:7.1f}s")
        if outcome.status not in (FAILED, ERRORED):
            return False
        self.on_progress(f"task {name!r} {outcome.status.lower()}: {outcome.message}; log: {log}")
        if log is not None and log.exists() and not self.stopping.is_set():
            lines = log.read_text(errors="replace").splitlines()[-TAIL_LINES:]
            for line in lines:
                self.on_progress(f"  | {line}")
        return True

    def _omit(self, pending: list[str], message: str) -> None:
        for name in list(pending):
            pending.remove(name)
            self._finish(name, Outcome(OMITTED, message=message))

    def _result(
        self, status: str, message: str, outputs: dict[str, str] | None = None
    ) -> RunResult:
        return RunResult(
            status,
            self.workflow_name,
            self.steps,
            outputs or {},
            self.artifacts,
            message,
            self.parameters,
            self.store.root,
            dict(self.record),
        )


def run_workflow(
    template: Mapping[str, Any],
    parameters: Mapping[str, str],
    output_dir: Path,
    *,
    artifact_root: str | None = None,
    env: Mapping[str, str] | None = None,
    stand_ins: Mapping[str, StandIn] | None = None,
    max_parallel: int = 2,
    workflow_name: str | None = None,
    on_progress: Callable[[str], None] = print,
    on_live: Callable[[list[LiveTask]], None] | None = None,
    overwrite: bool = False,
    earlier: Mapping[str, Any] | None = None,
    warm_start: bool = True,
    locks_dir: Path | None = None,
    rerun: Collection[str] = (),
    record: Mapping[str, Any] | None = None,
) -> RunResult:
    """Run the template's entrypoint DAG here; write and return the result (run.json).

    `on_progress` gets a line per settled task (and a failed task's log tail); `on_live`,
    about twice a second, the running tasks and their progress.

    The output folder holds one run (workflows.local.folder): `overwrite` empties a folder
    that holds an earlier run; `earlier`, that run's run.json, resumes it instead (pass its
    parameters and workflow name too; see `Run.run`). `warm_start`: start the processes of
    steps of the project's CLI ahead of their tasks (`Run._warm_ahead`). The workflow's
    mutexes are held in `locks_dir` (default: beside the output folder) for the whole run,
    exit handler included (workflows.local.mutexes). A resume takes the tasks in `rerun`
    again, with every task after them (`Run._resume`). `record` joins run.json's own
    entries, from its first write.

    Raises WorkflowError, before anything runs, for unknown or missing parameters, missing
    templates or stand-ins, bad `depends`, `{{...}}` variables that cannot resolve, and an
    output folder that may not be used. A task that fails makes the result "Failed" (it is
    not raised); so does an interrupt (SIGINT, SIGTERM: `result.extra["interrupted"]`).
    """
    output_dir = Path(output_dir).resolve()
    name = workflow_name or generate_name(template)
    store = open_store(artifact_root or str(output_dir / "artifacts"))
    run = Run(
        template,
        parameters,
        output_dir,
        store,
        env or {},
        stand_ins or {},
        max_parallel,
        name,
        on_progress,
        on_live,
    )
    run.warm_start = warm_start
    # Runs beside each other share their mutexes, as the workflows of one controller do.
    run.locks_dir = locks_dir or output_dir.parent / "locks"
    unknown = sorted(set(rerun) - run.tasks.keys())
    if unknown:
        raise WorkflowError(f"rerun: no task named {', '.join(unknown)}")
    run.rerun = frozenset(rerun)
    run.record = record or {}
    with run_folder(output_dir, name, overwrite=overwrite, resume=earlier is not None):
        # What `--resume` runs again: the template as it ran.
        (output_dir / WORKFLOW).write_text(json.dumps(template, indent=1) + "\n")
        return run.run(earlier)
