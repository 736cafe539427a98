"""Executing a plan: tasks in `depends` order, `when`, up to `max_parallel` at once, each a
process (or a manifest sent to the Kubernetes API), with its log, outputs and artifacts;
then the exit handler; run.json at the end. The parts: the plan (plan.py), what comes next
(scheduler.py), one task (executor.py), the processes (running.py, processes.py), warm
starts (warm.py), live progress (live.py) and the account (ledger.py)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from workflows.errors import WorkflowError
from workflows.local.executor import Executor
from workflows.local.folder import WORKFLOW, run_folder
from workflows.local.hooks import Hooks
from workflows.local.jobs import output_keys
from workflows.local.ledger import Ledger
from workflows.local.live import Live, LiveTask
from workflows.local.mutexes import holding
from workflows.local.outcome import ERRORED, FAILED, OMITTED, SKIPPED, SUCCEEDED, Outcome
from workflows.local.plan import Plan, make_plan
from workflows.local.resources import ClusterAccess
from workflows.local.result import RunResult
from workflows.local.running import Running
from workflows.local.scheduler import Settle, Start, by_height, next_step, taken_again
from workflows.local.signals import Interrupted, interruptible
from workflows.local.store import ArtifactStore, open_store
from workflows.local.tasks import generate_name
from workflows.local.warm import WarmStarts

TAIL_LINES = 20


class Run:
    """A plan being carried out."""

    def __init__(
        self,
        plan: Plan,
        store: ArtifactStore,
        *,
        max_parallel: int,
        on_progress: Callable[[str], None],
        on_live: Callable[[list[LiveTask]], None] | None,
        cluster: ClusterAccess | None,
        warm_start: bool,
        record: Mapping[str, Any],
    ) -> None:
        self.plan, self.store, self.record = plan, store, record
        self.max_parallel, self.on_progress = max(1, max_parallel), on_progress
        self.ledger = Ledger(plan.scope, store.uri)
        self.running = Running()
        self.warm = WarmStarts(plan, self.running, self.max_parallel)
        self.warm_start = warm_start
        self.live = Live(on_live, plan.context.hooks.progress, plan.width)
        self.executor = Executor(plan, store, self.running, self.warm, self.live, cluster)

    def run(
        self, locks_dir: Path, earlier: Mapping[str, Any] | None, rerun: Collection[str]
    ) -> RunResult:
        """Run the DAG, then the exit handler, and write run.json. With `earlier` (the
        run.json of this workflow's failed run), run as `argo retry` does: its succeeded
        and skipped tasks stand, with their outputs; the others run again."""
        pending = by_height(
            self.plan, self._resume(earlier, rerun) if earlier else list(self.plan.tasks)
        )
        with (
            interruptible(on_repeat=self.running.kill_now) as stops,
            ThreadPoolExecutor(max_workers=self.max_parallel) as pool,
            contextlib.ExitStack() as cleanup,
            self.live.watching(),
        ):
            cleanup.callback(self.warm.discard)
            try:
                cleanup.enter_context(
                    holding(locks_dir, self.plan.mutexes, self.plan.workflow_name, self.on_progress)
                )
            except Interrupted as stop:  # Pending, as on a cluster: nothing ran, no exit handler
                self._omit(pending, f"not started: interrupted by {stop.name} waiting for a mutex")
                result = self._result(FAILED, "interrupted")
                result.extra["interrupted"] = {"signal": stop.name, "stopped": []}
            else:
                result = self._carry_out(pool, pending, stops)
            result.write(self.plan.context.output_dir / "run.json")
        return result

    def _carry_out(self, pool: ThreadPoolExecutor, pending: list[str], stops: Any) -> RunResult:
        running: dict[Future[Outcome], str] = {}
        try:
            failed = self._loop(pool, pending, running)
            self._omit(pending, "not started: the workflow failed")
            stops.cleaning_up = True  # a signal now cannot stop the exit handler
            return self._run_exit_handler(self._dag_result(failed))
        except Interrupted as stop:
            return self._interrupted(stop, running, pending)
        except BaseException:  # e.g. the disk is full: leave no step running
            self.running.stop_all()
            raise

    def _loop(
        self, pool: ThreadPoolExecutor, pending: list[str], running: dict[Future[Outcome], str]
    ) -> bool:
        """Start and settle tasks until none runs; True if one failed the workflow.
        `pending` shrinks as tasks start or settle; what is left never started."""
        failed = False
        while True:
            while not failed and (step := self._next(pending, len(running))):
                pending.remove(step.name)
                if isinstance(step, Start):
                    running[pool.submit(self.executor.execute, step.job)] = step.name
                else:
                    failed |= self._finish(step.name, step.outcome)
            if failed:
                self.warm.discard()  # nothing more starts
            elif self.warm_start:
                started = set(self.ledger.status) | set(running.values())
                self.warm.ahead(pending, started, self.ledger.params)
            if not running:
                return failed
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                failed |= self._finish(running.pop(future), future.result())

    def _next(self, pending: list[str], busy: int) -> Start | Settle | None:
        ledger = self.ledger
        step = next_step(
            self.plan, pending, ledger.status, ledger.params, ledger.keys, busy < self.max_parallel
        )
        if isinstance(step, Settle) and step.outcome.ran:  # an error before it started
            self.warm.discard(step.name)
            log = self.plan.context.log_path(step.name)
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(f"error: {step.outcome.message}\n")
        return step

    def _interrupted(
        self, stop: Interrupted, running: Mapping[Future[Outcome], str], pending: list[str]
    ) -> RunResult:
        """Stop every process, settle the tasks, run the exit handler (the workflow has
        Failed), and say what was stopped. A second signal only hurries this along."""
        self.on_progress(f"{stop.name}: stopping {', '.join(running.values()) or 'nothing'}")
        self.running.stop_all()
        for future, name in running.items():
            self._finish(name, future.result())
        self.running.accept()  # the exit handler runs
        self._omit(pending, f"not started: interrupted by {stop.name}")
        result = self._run_exit_handler(self._result(FAILED, "interrupted"))
        result.extra["interrupted"] = {"signal": stop.name, "stopped": sorted(running.values())}
        return result

    def _resume(self, earlier: Mapping[str, Any], rerun: Collection[str]) -> list[str]:
        """Take over the earlier run's tasks that stand (scheduler.taken_again); return the
        rest."""
        steps = earlier.get("steps", {})
        scope = self._earlier_scope(steps)

        def gone(name: str) -> str | None:
            kept = self._kept(name, steps[name], scope)
            missing = [a for a, key in kept.items() if not self.store.names(key)]
            if missing:
                self.on_progress(
                    f"{name:<{self.plan.width}}  runs again: its artifact {missing[0]!r} is "
                    f"gone from {self.store.root}"
                )
            return missing[0] if missing else None

        again = taken_again(self.plan, steps, rerun, gone)
        for name in self.plan.tasks:
            if name not in again:
                self.ledger.take_over(name, steps[name])
                status = steps[name]["status"]
                self.on_progress(f"{name:<{self.plan.width}}  {status:<9}  (earlier run)")
        return [name for name in self.plan.tasks if name in again]

    def _earlier_scope(self, steps: Mapping[str, Any]) -> dict[str, str]:
        """The globals and the earlier run's task outputs, once its tasks' artifacts and
        outputs are checked for shape: run.json is data."""
        for task, step in steps.items():
            kept, outputs = step.get("artifacts", {}), step.get("outputs", {})
            if not isinstance(kept, dict) or not isinstance(outputs, dict):
                raise WorkflowError(f"the earlier run's task {task!r} is garbled in its run.json")
            if not all(isinstance(v, str) for v in outputs.values()):
                raise WorkflowError(
                    f"the earlier run's task {task!r} has outputs that are no strings"
                )
        return {
            **self.plan.context.globals,
            **{
                f"tasks.{task}.outputs.parameters.{key}": value
                for task, step in steps.items()
                for key, value in step.get("outputs", {}).items()
            },
        }

    def _kept(self, name: str, step: Mapping[str, Any], scope: Mapping[str, str]) -> dict[str, str]:
        """The artifacts of a task the earlier run kept, each at the key its template
        declares (its arguments resolved in `scope`, the earlier run's): run.json cannot
        point the tasks after it at other objects."""
        kept: dict[str, str] = step.get("artifacts", {})
        declared = output_keys(self.plan.context, self.plan.tasks[name], scope)
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
            return self._result(FAILED, f"task(s) failed: {', '.join(self.ledger.failed())}")
        try:
            outputs = self.plan.dag_outputs(self.ledger.params)
        except WorkflowError as e:  # e.g. an output of a task that was skipped
            self.on_progress(f"workflow failed: {e}")
            return self._result(FAILED, str(e))
        return self._result(SUCCEEDED, "", outputs)

    def _run_exit_handler(self, result: RunResult) -> RunResult:
        """Argo's `onExit`: runs after the DAG whatever its outcome, with
        `{{workflow.status}}` and `{{workflow.failures}}`; if it fails, so does the run."""
        task = self.plan.exit_handler
        if task is None:
            return result
        failures = [
            {
                "displayName": n,
                "templateName": self.plan.tasks[n].template["name"],
                "phase": self.ledger.status[n],
                "message": self.ledger.steps[n].get("message", ""),
            }
            for n in self.ledger.failed()
        ]
        try:
            job = self.plan.prepare_exit_handler(result.status, json.dumps(failures))
            outcome = self.executor.execute(job)
        except WorkflowError as e:
            outcome = Outcome(ERRORED, message=str(e))
        if self._finish(task.name, outcome) and result.status == SUCCEEDED:
            return self._result(FAILED, f"exit handler {task.name!r} failed")
        return result

    def _finish(self, name: str, outcome: Outcome) -> bool:
        """Record a settled task and report it; True when it failed the workflow."""
        log = self.plan.context.log_path(name) if outcome.ran else None
        self.ledger.settle(name, outcome, log)
        if not outcome.warm_start:
            self.warm.discard(name)  # e.g. omitted: its warm process will not run
        self.live.publish()  # without this task
        width = self.plan.width
        why = f"  {outcome.message}" if outcome.status == SKIPPED else ""
        self.on_progress(f"{name:<{width}}  {outcome.status:<9}  {outcome.seconds:7.1f}s{why}")
        if not outcome.failed:
            return False
        self.on_progress(f"task {name!r} {outcome.status.lower()}: {outcome.message}; log: {log}")
        if log is not None and log.exists() and not self.running.stopping.is_set():
            for line in log.read_text(errors="replace").splitlines()[-TAIL_LINES:]:
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
            self.plan.workflow_name,
            self.ledger.steps,
            outputs or {},
            self.ledger.artifacts,
            message,
            self.plan.parameters,
            self.store.root,
            dict(self.record),
        )


class LocalRun:
    """A run checked and ready: `holding_folder()` takes its output folder (checked,
    locked, emptied as workflows.local.folder says), then `start(cluster)` runs it. In two
    steps, so what the caller starts between them (a local cluster) writes into a folder
    that is already the run's."""

    def __init__(
        self,
        template: Mapping[str, Any],
        parameters: Mapping[str, str],
        output_dir: Path,
        *,
        artifact_root: str | None = None,
        env: Mapping[str, str] | None = None,
        hooks: Hooks | None = None,
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
    ) -> None:
        self.template, self.parameters = template, parameters
        self.output_dir = Path(output_dir).resolve()
        self.name = workflow_name or generate_name(template)
        self.store = open_store(artifact_root or str(self.output_dir / "artifacts"))
        self.env, self.hooks = dict(env or {}), hooks or Hooks()
        self.earlier, self.rerun, self.overwrite = earlier, rerun, overwrite
        # Runs beside each other share their mutexes, as the workflows of one controller do.
        self.locks = locks_dir or self.output_dir.parent / "locks"
        self.max_parallel, self.warm_start, self.record = max_parallel, warm_start, record or {}
        self.on_progress, self.on_live = on_progress, on_live
        plan = self._plan({})  # every check, before the folder is touched
        if unknown := sorted(set(rerun) - plan.tasks.keys()):
            raise WorkflowError(f"rerun: no task named {', '.join(unknown)}")
        every = [*plan.tasks.values(), *([plan.exit_handler] if plan.exit_handler else [])]
        self.needs_cluster = next((t.name for t in every if t.is_resource), None)

    def _plan(self, cluster_env: Mapping[str, str]) -> Plan:
        env = {**self.env, **cluster_env}
        return make_plan(
            self.template, self.parameters, self.output_dir, env, self.hooks, self.name
        )

    @contextlib.contextmanager
    def holding_folder(self) -> Iterator[None]:
        resume = self.earlier is not None
        with run_folder(self.output_dir, self.name, overwrite=self.overwrite, resume=resume):
            # What `--resume` runs again: the template as it ran.
            text = json.dumps(self.template, indent=1) + "\n"
            (self.output_dir / WORKFLOW).write_text(text)
            yield

    def check_cluster(self, cluster: ClusterAccess | None) -> None:
        """WorkflowError if the run has resource templates and no Kubernetes API."""
        if cluster is None and self.needs_cluster:
            raise WorkflowError(
                f"task {self.needs_cluster!r} is a resource template: give a Kubernetes API"
            )

    def start(self, cluster: ClusterAccess | None) -> RunResult:
        self.check_cluster(cluster)
        run = Run(
            self._plan(cluster.env if cluster else {}),
            self.store,
            max_parallel=self.max_parallel,
            on_progress=self.on_progress,
            on_live=self.on_live,
            cluster=cluster,
            warm_start=self.warm_start,
            record=self.record,
        )
        return run.run(self.locks, self.earlier, self.rerun)


def run_workflow(
    template: Mapping[str, Any],
    parameters: Mapping[str, str],
    output_dir: Path,
    *,
    cluster: ClusterAccess | None = None,
    **options: Any,
) -> RunResult:
    """Run the template's entrypoint DAG here; write and return the result (run.json).

    `options` are LocalRun's. `on_progress` gets a line per settled task (and a failed
    task's log tail); `on_live`, about twice a second, the running tasks and their
    progress. `hooks`: the project's (workflows.local.hooks). `cluster`: the Kubernetes API
    of resource templates and pods.

    The output folder holds one run (workflows.local.folder): `overwrite` empties it;
    `earlier`, its run.json, resumes it (`Run.run`; pass its parameters and workflow name),
    taking the tasks in `rerun` again (scheduler.taken_again). The mutexes are held in
    `locks_dir` (default: beside the folder) for the whole run (workflows.local.mutexes).
    `record` joins run.json's own entries.

    Raises WorkflowError, before anything runs, for unknown or missing parameters, missing
    templates, bad `depends`, `{{...}}` variables that cannot resolve, and an output folder
    that may not be used. A task that fails makes the result "Failed" (it is not raised);
    so does an interrupt (SIGINT, SIGTERM: `result.extra["interrupted"]`).
    """
    run = LocalRun(template, parameters, output_dir, **options)
    run.check_cluster(cluster)  # before the folder is touched
    with run.holding_folder():
        return run.start(cluster)
