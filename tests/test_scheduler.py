"""The local Argo's scheduler (workflows.local.scheduler) on the compiled pipeline, with no
process: what is ready, skipped or omitted, when a failure is retried, and what a resumed
run takes again."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import COLD

from workflows.dag import pipeline
from workflows.local.hooks import Hooks
from workflows.local.outcome import ERRORED, FAILED, OMITTED, SKIPPED, SUCCEEDED, Outcome
from workflows.local.plan import Plan, make_plan
from workflows.local.scheduler import Settle, Start, next_step, retry_delay, taken_again
from workflows.local.tasks import Retry


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    template = pipeline.render()[0]
    out = tmp_path_factory.mktemp("plan")
    return make_plan(template, {}, out, {}, Hooks(), "wf-1")


def ended(plan: Plan, failed: str, *, tfjob: bool = False) -> dict[str, dict[str, str]]:
    """An earlier run's steps: every task before `failed` succeeded (or skipped, on the
    branch not taken), `failed` failed, those after it were omitted."""
    branch = {"workdir-claim", "stage-data", "tfjob", "wait-tfjob", "collect-model"}
    steps = {}
    for name, task in plan.tasks.items():
        if name == failed:
            status = FAILED
        elif failed in task.ancestors:
            status = OMITTED
        elif "gpu" in name or (name in branch) != tfjob or name == "train" and tfjob:
            status = SKIPPED
        else:
            status = SUCCEEDED
        steps[name] = {"status": status}
    return steps


def test_the_first_ready_task_starts_and_a_false_when_skips(plan: Plan) -> None:
    first = next_step(plan, list(plan.tasks), {}, plan.scope, {}, free=True)
    assert isinstance(first, Start) and first.name == "validate-params"
    assert next_step(plan, list(plan.tasks), {}, plan.scope, {}, free=False) is None
    # dist_training is false: once model-metadata succeeded, the claim is skipped.
    done = {"model-metadata": SUCCEEDED}
    pending = ["workdir-claim"]
    step = next_step(plan, pending, done, {**plan.scope, **COLD}, {}, free=True)
    assert isinstance(step, Settle) and step.outcome.status == SKIPPED
    assert step.outcome.message == (
        "when 'false == true && 'run' == 'run'' evaluated false"  # as Argo says it
    )


def test_a_failed_dependency_omits_its_dependants(plan: Plan) -> None:
    step = next_step(plan, ["embeddings"], {"prepare-data": FAILED}, plan.scope, {}, True)
    assert isinstance(step, Settle) and step.outcome.status == OMITTED


def test_retries_follow_the_policy_the_limit_and_the_backoff() -> None:
    retry = Retry(2, "OnError", None, 1.0, 2.0, None)
    assert retry_delay(retry, Outcome(ERRORED), 0, 1, 1) == 1.0
    assert retry_delay(retry, Outcome(ERRORED), 1, 1, 1) == 2.0
    assert retry_delay(retry, Outcome(ERRORED), 2, 1, 1) is None  # the limit
    assert retry_delay(retry, Outcome(FAILED), 0, 1, 1) is None  # not covered
    capped = Retry(3, "Always", None, 10.0, 1.0, 15.0)
    assert retry_delay(capped, Outcome(FAILED), 1, 1, elapsed=10) is None  # maxDuration


def test_a_resume_after_a_failed_deploy_wait_keeps_training_and_evaluation(plan: Plan) -> None:
    again = taken_again(plan, ended(plan, "deploy-wait"), pipeline.RERUN_ON_RESUME, lambda _: None)
    assert {"gate", "deploy-tensorflow", "deploy-custom", "deploy-wait"} <= again
    # The claim was skipped: no object of it is lost, and nothing before the gate reruns.
    assert not again & {"workdir-claim", "train", "evaluate", "log-training-metadata"}


def test_a_resume_takes_a_tfjob_again_when_its_wait_runs_again(plan: Plan) -> None:
    """The TFJob (and the claim its replicas mount) lived in the earlier run's local
    cluster: a wait that runs again needs them made again."""
    steps = ended(plan, "wait-tfjob", tfjob=True)
    assert steps["tfjob"]["status"] == SUCCEEDED
    again = taken_again(plan, steps, (), lambda _: None)
    assert {"workdir-claim", "stage-data", "tfjob", "wait-tfjob", "collect-model"} <= again
    # Once the model is collected, a later failure leaves the cluster's objects alone.
    later = taken_again(plan, ended(plan, "evaluate", tfjob=True), (), lambda _: None)
    assert "evaluate" in later and not later & {"workdir-claim", "tfjob", "collect-model"}


def test_a_task_whose_artifact_is_gone_runs_again_with_what_follows(plan: Plan) -> None:
    steps = ended(plan, "deploy-wait")
    again = taken_again(plan, steps, (), lambda name: "model" if name == "train" else None)
    assert {"train", "evaluate", "gate"} <= again and "prepare-data" not in again


def test_the_plan_is_checked_up_front(tmp_path: Path) -> None:
    template = pipeline.render()[0]
    template["spec"]["templates"][-1]["name"] = "renamed"
    with pytest.raises(Exception, match="no template named"):
        make_plan(template, {}, tmp_path, {}, Hooks(), "wf-1")
