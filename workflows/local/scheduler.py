"""What happens next, as Argo's controller decides it, with no processes: which task is
ready, skipped (`when`), omitted (`depends`) or errored; the order among ready tasks; when
a failed attempt is retried; and which tasks a resumed run takes again. Pure functions of
the plan and the run's account so far."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from workflows.errors import WorkflowError
from workflows.expressions import evaluate_retry, evaluate_when
from workflows.local.jobs import Job
from workflows.local.outcome import ERRORED, FAILED, OMITTED, SKIPPED, SUCCEEDED, Outcome
from workflows.local.plan import Plan, visible
from workflows.local.substitution import substitute
from workflows.local.tasks import Retry, Task


@dataclass(frozen=True)
class Start:
    name: str
    job: Job


@dataclass(frozen=True)
class Settle:
    """A task that ends without running; `errored` ones get their message as a log."""

    name: str
    outcome: Outcome


def by_height(plan: Plan, names: Collection[str]) -> list[str]:
    """Ready tasks start by critical path when slots are short (Argo's controller has no
    order; the DAG's own order would start two side branches before the long chain)."""
    return sorted(names, key=lambda name: -plan.tasks[name].height)


def resolved_when(task: Task, params: Mapping[str, str]) -> str | None:
    """The task's `when` with its references substituted (None without one); WorkflowError
    if it cannot be resolved yet."""
    when = task.spec.get("when")
    if not when:
        return None
    return substitute(when, visible(task, params), f"task {task.name!r} when")


def when_holds(task: Task, params: Mapping[str, str]) -> bool:
    """The task's `when` (true without one)."""
    when = resolved_when(task, params)
    return when is None or evaluate_when(when)


def deps_done(task: Task, status: Mapping[str, str]) -> bool:
    return task.depends is None or all(d in status for d in task.depends.tasks)


def next_step(
    plan: Plan,
    pending: list[str],
    status: Mapping[str, str],
    params: Mapping[str, str],
    keys: Mapping[str, str],
    free: bool,
) -> Start | Settle | None:
    """The next task to start (if a slot is `free`) or to settle, if any."""
    for name in pending:
        task = plan.tasks[name]
        if not deps_done(task, status):
            continue
        if task.depends is not None and not task.depends.holds(status):
            return Settle(name, Outcome(OMITTED, message="depends condition not met"))
        try:
            when = resolved_when(task, params)
            if when is not None and not evaluate_when(when):
                # Argo's message, with the `when` as substituted (workflow/controller/
                # dag.go, executeDAGTask).
                return Settle(name, Outcome(SKIPPED, message=f"when '{when}' evaluated false"))
            if free:
                return Start(name, plan.prepare(task, params, keys))
        except WorkflowError as e:
            return Settle(name, Outcome(ERRORED, message=str(e), ran=True))
    return None


_COVERED = {
    "Always": (FAILED, ERRORED),
    "OnFailure": (FAILED,),
    "OnError": (ERRORED,),
    "OnTransientError": (ERRORED,),
}


def retry_delay(
    retry: Retry | None, outcome: Outcome, retries: int, duration: float, elapsed: float
) -> float | None:
    """Seconds to wait before the next attempt, as Argo's retryStrategy decides; None: no
    retry. WorkflowError if its expression cannot be evaluated."""
    if retry is None or outcome.status == SUCCEEDED or retries >= retry.limit:
        return None
    if outcome.status not in _COVERED.get(retry.policy, ()):
        return None
    if retry.expression and not evaluate_retry(
        retry.expression, outcome.exit_code, outcome.status, duration
    ):
        return None
    delay = retry.duration * retry.factor**retries
    if retry.max_duration is not None and elapsed + delay > retry.max_duration:
        return None
    return delay


def _reads(task: Task) -> set[str]:
    """The tasks whose outputs `task` takes (`{{tasks.T.outputs...}}` in its arguments)."""
    return set(re.findall(r"tasks\.([\w-]+)\.outputs\.", json.dumps(task.spec)))


def taken_again(
    plan: Plan,
    steps: Mapping[str, Mapping[str, object]],
    rerun: Collection[str],
    gone: Callable[[str], str | None],
) -> set[str]:
    """The tasks a resumed run runs again (`argo retry`): those that did not succeed or
    skip, those in `rerun`, those with an artifact `gone` (its name), and every task after
    one of them; and a resource template that succeeded, with every task after it, when a
    task that runs again reads its outputs: its object lived in the local cluster, which
    ended with the earlier run."""
    again = set(rerun)
    for name in plan.tasks:
        ended = steps.get(name, {}).get("status")
        if ended not in (SUCCEEDED, SKIPPED) or gone(name) is not None:
            again.add(name)
    while True:
        again |= {n for n, t in plan.tasks.items() if t.ancestors & again}
        read = {r for n in again for r in _reads(plan.tasks[n])}
        lost = {
            n
            for n, t in plan.tasks.items()
            if t.is_resource and n in read and steps.get(n, {}).get("status") == SUCCEEDED
        }
        if lost <= again:
            return again
        again |= lost
