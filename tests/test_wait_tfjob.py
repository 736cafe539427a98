"""wait-tfjob: the decision over recorded TFJob objects, the polling, and the whole step
through the kubernetes client.

The objects in fixtures/tfjob/ are TFJobs as the API server returns them when the
Training Operator 1.9 has reconciled them (conditions, reasons and messages as its
controller writes them: `pkg/controller.v1/tensorflow/tfjob_controller.go` and
`pkg/controller.v1/common/job.go`): running, succeeded, failed because a Worker replica
failed, failed past `activeDeadlineSeconds`, failed at the backoff limit, and never
scheduled (only `Created`, no replica running).
"""

from __future__ import annotations

import functools
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import helpers
import pytest
from helpers import FakeApiServer

from textcnn.cluster import jobs
from textcnn.cluster.tfjob import judge
from textcnn.steps import wait_tfjob
from workflows.checks.admission import validate_tfjob

FIXTURES = Path(__file__).parent / "fixtures" / "tfjob"
NAME = "textcnn-pipeline-7xk2p-tfjob-q8v4m"


recorded = functools.partial(helpers.recorded, "tfjob")
replay = functools.partial(helpers.replay, "tfjob")


@pytest.mark.parametrize("fixture", sorted(p.stem for p in FIXTURES.glob("*.json")))
def test_recorded_objects_are_valid_tfjobs(fixture: str) -> None:
    assert validate_tfjob(recorded(fixture)) == []


@pytest.mark.parametrize(
    ("fixture", "state", "words"),
    [
        ("succeeded", "succeeded", f"TFJob textcnn/{NAME} successfully completed."),
        (
            "replica-failed",
            "failed",
            "has failed because 1 Worker replica(s) failed. "
            "[replicas: Chief 1 active; Worker 1 active, 1 failed]",
        ),
        ("deadline-exceeded", "failed", "active longer than specified deadline"),
        ("backoff-limit", "failed", "reached the specified backoff limit"),
        ("never-scheduled", "waiting", "no replica is running yet"),
        ("running", "waiting", f"TFJob textcnn/{NAME} is running."),
    ],
)
def test_judge_recorded_objects(fixture: str, state: str, words: str) -> None:
    verdict = judge(recorded(fixture))
    assert verdict.state == state
    assert words in verdict.message


def test_failure_message_is_the_operators() -> None:
    obj = recorded("deadline-exceeded")
    (failed,) = [c for c in obj["status"]["conditions"] if c["type"] == "Failed"]
    assert judge(obj).message.startswith(failed["message"])


def test_failed_wins_over_an_earlier_running_condition() -> None:
    # The operator turns Running to False when the job fails; a stale True must not matter.
    obj = recorded("backoff-limit")
    for c in obj["status"]["conditions"]:
        c["status"] = "True"
    assert judge(obj).state == "failed"


def test_no_status_yet_is_waiting_and_says_so() -> None:
    obj = recorded("running")
    del obj["status"]
    verdict = judge(obj)
    assert verdict.state == "waiting"
    assert "no status yet" in verdict.message and NAME in verdict.message


def test_wait_for_follows_the_job_until_it_succeeds() -> None:
    get, seen = replay("never-scheduled", "running", "running", "succeeded")
    message = jobs.wait_for(get, judge, timeout_s=10, poll_s=0.001)
    assert message == f"TFJob textcnn/{NAME} successfully completed."
    assert seen == ["never-scheduled", "running", "running", "succeeded"]


@pytest.mark.parametrize("fixture", ["replica-failed", "deadline-exceeded", "backoff-limit"])
def test_wait_for_fails_with_the_operators_message(fixture: str) -> None:
    get, seen = replay("running", fixture)
    with pytest.raises(RuntimeError) as info:
        jobs.wait_for(get, judge, timeout_s=10, poll_s=0.001)
    assert str(info.value) == judge(recorded(fixture)).message
    assert seen == ["running", fixture]


def test_a_job_that_is_never_scheduled_times_out_saying_so() -> None:
    get, seen = replay("never-scheduled")
    with pytest.raises(
        TimeoutError,
        match=r"not finished after 0.05 s; last seen: .*created "
        r"but no replica is running yet",
    ):
        jobs.wait_for(get, judge, timeout_s=0.05, poll_s=0.01)
    assert len(seen) >= 2  # it did poll, more than once


@pytest.fixture
def api(
    request: pytest.FixtureRequest, kube_api: Callable[[list[dict[str, Any]]], FakeApiServer]
) -> FakeApiServer:
    """A fake API server replaying the fixtures named by the test's parameter."""
    return kube_api([recorded(n) for n in request.param])


PATH = f"/apis/kubeflow.org/v1/namespaces/textcnn/tfjobs/{NAME}"


@pytest.mark.parametrize("api", [("running", "succeeded")], indirect=True)
def test_run_polls_the_tfjob_through_the_kubernetes_client(
    api: FakeApiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    wait_tfjob.run(name=NAME, namespace="textcnn", timeout_s=30, poll_s=0.01)
    assert api.requests == [(PATH, "Bearer t0ken")] * 2
    assert f"TFJob textcnn/{NAME} successfully completed." in capsys.readouterr().out


@pytest.mark.parametrize("api", [("running", "replica-failed")], indirect=True)
def test_the_step_fails_with_the_operators_message(api: FakeApiServer) -> None:
    step = subprocess.run(
        [
            sys.executable,
            "-m",
            "textcnn",
            "wait-tfjob",
            f"--name={NAME}",
            "--namespace=textcnn",
            "--timeout_s=30",
            "--poll_s=0.01",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert step.returncode != 0
    assert "has failed because 1 Worker replica(s) failed." in step.stderr
    assert [path for path, _ in api.requests] == [PATH] * 2
