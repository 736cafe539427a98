"""One task carried out, as its pod would: its attempts (retryStrategy), each staging the
input artifacts, running the container's command (or sending the resource's manifest to
the Kubernetes API), and collecting its output parameters and artifacts."""

from __future__ import annotations

import contextlib
import shlex
import threading
import time
import traceback
from typing import IO, Any

from workflows.errors import WorkflowError
from workflows.expressions import evaluate_when
from workflows.local import processes, resources
from workflows.local.jobs import Job
from workflows.local.live import Live
from workflows.local.outcome import DEADLINE_EXCEEDED, ERRORED, FAILED, SUCCEEDED, Outcome
from workflows.local.plan import Plan
from workflows.local.running import Running
from workflows.local.scheduler import retry_delay
from workflows.local.store import ArtifactStore
from workflows.local.substitution import substitute
from workflows.local.warm import WarmStarts


class Executor:
    def __init__(
        self,
        plan: Plan,
        store: ArtifactStore,
        running: Running,
        warm: WarmStarts,
        live: Live,
        cluster: resources.ClusterAccess | None,
    ) -> None:
        self.plan, self.store, self.running, self.warm, self.live = plan, store, running, warm, live
        self.cluster = cluster

    def execute(self, job: Job) -> Outcome:
        """Run one task (in a worker thread): its attempts, then its metrics."""
        start = time.monotonic()
        if not self.warm.claim(job):  # else its log holds the warm process's lines
            job.log.parent.mkdir(parents=True, exist_ok=True)
            job.log.write_text("")
        self.live.add(job.task, job.log, start)
        try:
            outcome = self._attempts(job, start)
        finally:
            self.warm.discard(job.task)  # one its attempt did not reach
            self.live.remove(job.task)
        outcome.seconds, outcome.ran = time.monotonic() - start, True
        outcome.warm_start = job.task in self.warm.ran
        outcome.metrics = metrics(job, outcome)
        return outcome

    def _attempts(self, job: Job, start: float) -> Outcome:
        # Append mode: the process writes to the same log while the runner holds it.
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
                now = time.monotonic()
                try:
                    delay = retry_delay(job.retry, outcome, retries, now - began, now - start)
                except WorkflowError as e:  # the expression cannot be evaluated
                    outcome, delay = Outcome(ERRORED, message=f"retryStrategy: {e}"), None
                    log.write(f"error: {outcome.message}\n")
                if delay is None or self.running.stopping.wait(delay):
                    break
                retries += 1
                limit = job.retry.limit if job.retry else 0
                log.write(f"retry {retries} of {limit} after {delay:g} s\n")
                log.flush()
        outcome.retries = retries
        return outcome

    def _attempt(self, job: Job, log: IO[str]) -> Outcome:
        if not self.warm.is_claimed(job.task):  # a warm process's pod was made fresh before
            job.fresh_pod()
        for name, key, path in job.inputs:
            try:
                self.store.download(key, path)
            except FileNotFoundError:
                return Outcome(
                    ERRORED,
                    message=f"input artifact {name!r}: key {key!r} not found in "
                    f"{self.store.root} (task {job.task!r})",
                )
        if job.command is None:
            try:
                returned = self._resource(job, log)
            except (resources.ApiError, WorkflowError) as e:
                return Outcome(FAILED, message=str(e), exit_code=1)  # argoexec's, in its pod
            return self._collect(job, returned, None, None, exit_code=0)
        self.plan.context.hooks.pull(
            str(job.template["container"].get("image", "")), self.plan.context.output_dir
        )
        log.write(f"$ {shlex.join(job.command)}\n")
        log.flush()
        offset = log.tell()
        code, rss, late, stopped = self._process(job, log)
        reported = None
        with contextlib.suppress(OSError):
            reported = job.progress_file.read_text().strip()
        failed = Outcome(FAILED, max_rss_mib=rss, exit_code=code, progress=reported)
        if stopped:
            failed.message, failed.max_rss_mib = "stopped: the run was interrupted", None
        elif late:
            failed.message = f"{DEADLINE_EXCEEDED} ({job.deadline_s:g} s)"
        elif code != 0:
            failed.message = f"exit code {code}{self._reason(job, offset)}"
        else:
            return self._collect(job, {}, rss, reported, exit_code=code)
        return failed

    def _reason(self, job: Job, offset: int) -> str:
        """The failed container's own account of why, in its log from `offset` (this
        attempt's output), if the project's hook finds one, so the reason shows above the
        log's library noise."""
        with job.log.open("rb") as f:
            f.seek(offset)
            lines = f.read().decode(errors="replace").splitlines()
        found = [r for line in lines if (r := self.plan.context.hooks.error(line)) is not None]
        return f" ({found[-1]})" if found else ""

    def _process(self, job: Job, log: IO[str]) -> tuple[int, float | None, bool, bool]:
        """Run the job's command: (exit code, peak resident memory in MiB if known, whether
        it was stopped at its deadline, whether it was stopped by an interrupt)."""
        assert job.command is not None
        proc = self.warm.hand_over(job.task)
        if proc is None:
            proc = processes.start(job.command, log, job.process_env())
        self.running.add(proc)
        late = threading.Event()

        def stop_late() -> None:
            late.set()
            processes.stop(proc)

        timer = threading.Timer(job.deadline_s, stop_late)
        timer.start()
        try:
            code, rss = processes.reap(proc)
        finally:
            timer.cancel()
            self.running.discard(proc)
        return code, rss, late.is_set(), self.running.was_stopped(proc)

    def _resource(self, job: Job, log: IO[str]) -> dict[str, str]:
        """Send the manifest as Argo's executor does; its output parameters by jsonPath."""
        if self.cluster is None:  # the exit handler's: the DAG's were checked up front
            raise WorkflowError(f"task {job.task!r} is a resource template: no Kubernetes API")
        resource = job.template["resource"]
        ctx = self.plan.context
        client = resources.Client(self.cluster)
        owner = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "name": ctx.workflow_name,
            "uid": ctx.globals["workflow.uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        namespace = ctx.globals["workflow.namespace"]
        log.write(f"kubectl {resource['action']} -f manifest -o json\n")
        log.flush()
        made = resources.carry_out(client, resource, owner, namespace)
        if made is None:
            return {}
        meta = made["metadata"]
        done = {"create": "created", "apply": "configured", "get": "read"}[resource["action"]]
        log.write(f"{made['kind'].lower()}/{meta['name']} {done}\n")
        outputs = {}
        for p in job.template.get("outputs", {}).get("parameters", []):
            if "jsonPath" in p.get("valueFrom", {}):
                link = resources.self_link(made, meta.get("namespace", namespace), meta["name"])
                current = client.call("GET", link) or {}
                outputs[p["name"]] = resources.json_path(current, p["valueFrom"]["jsonPath"])
        return outputs

    def _collect(
        self,
        job: Job,
        returned: dict[str, str],
        rss: float | None,
        reported: str | None,
        exit_code: int,
    ) -> Outcome:
        """The outputs of an attempt whose container exited with `exit_code` (0)."""
        outputs = dict(returned)
        for name, param_path, default in job.out_params:
            if param_path is not None and param_path.is_file():
                value = param_path.read_text()
            elif name in returned:
                continue
            elif default is not None:
                value = default
            else:
                where = f"written to {param_path}" if param_path else "read from the object"
                return Outcome(
                    ERRORED,
                    message=f"output parameter {name!r} was not {where}",
                    exit_code=exit_code,
                )
            outputs[name] = value.removesuffix("\n")  # Argo trims one trailing newline
        keys = {}
        for name, key, path in job.outputs:
            if not path.exists():
                message = f"output artifact {name!r}: {path} was not written"
                return Outcome(ERRORED, message=message, exit_code=exit_code)
            self.store.upload(path, key)
            keys[name] = key
        return Outcome(
            SUCCEEDED,
            outputs=outputs,
            artifacts=keys,
            max_rss_mib=rss,
            progress=reported,
            exit_code=exit_code,
        )


def metrics(job: Job, outcome: Outcome) -> list[dict[str, Any]]:
    """The task's Prometheus metrics as Argo's controller emits them when it ends: `when`
    and the value resolved with its status, duration and outputs."""
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
