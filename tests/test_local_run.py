"""`python -m workflows run` as a user meets it, when things go wrong: stops that clean up,
one run per folder, resume, no hangs, and messages rather than tracebacks.

Every test here checks /proc, through `no_orphans`, that no process is left behind.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from helpers import PIPELINE_ENV, REPO, SMALL, pipeline_command, run_pipeline

from textcnn.metadata import lineage
from workflows.local.folder import LOCK

pytestmark = pytest.mark.usefixtures("no_orphans")


class Runner:
    """A pipeline run in the background, its output in files (no pipe can fill up)."""

    def __init__(self, out: Path, *options: str) -> None:
        self.out, self.log = out, out.parent / f"{out.name}.terminal"
        with self.log.open("w") as terminal:
            self.proc = subprocess.Popen(
                pipeline_command(out, *options),
                cwd=REPO,
                stdout=terminal,
                stderr=subprocess.STDOUT,
                env=PIPELINE_ENV,
            )

    def wait_for(self, condition: Callable[[], bool], what: str, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert self.proc.poll() is None, f"ended before {what}: {self.terminal()}"
            assert time.monotonic() < deadline, f"no {what} after {timeout_s} s"
            time.sleep(0.05)

    def started(self, task: str) -> bool:
        return (self.out / "logs" / f"{task}.log").is_file()

    def finish(self, timeout_s: float = 120) -> int:
        return self.proc.wait(timeout_s)

    def terminal(self) -> str:
        return self.log.read_text(errors="replace")

    def run_json(self) -> dict:
        return json.loads((self.out / "run.json").read_text())


def resume(out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workflows", "run", "--resume", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=PIPELINE_ENV,
    )


def slice_options(train: Path, test: Path) -> list[str]:
    return ["--train_data_path", str(train), "--test_data_path", str(test), *SMALL]


@pytest.mark.slow
def test_sigterm_during_train_stops_it_records_the_run_and_the_folder_was_held(
    data_slice: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    runner = Runner(out, *slice_options(*data_slice))
    runner.wait_for(lambda: runner.started("train"), "train")
    workflow = json.loads((out / LOCK).read_text())["workflow_name"]

    # Row: a second run into the same folder. Before: no lock, logs and lineage mixed.
    second = run_pipeline(out, *slice_options(*data_slice))
    assert second.returncode == 2
    assert f"is in use by workflow {workflow!r}" in second.stderr
    assert "Traceback" not in second.stdout + second.stderr

    # Row: SIGTERM while train runs. Before: the runner died at once, no run.json, and
    # train went on as an orphan, writing a model.
    runner.proc.send_signal(signal.SIGTERM)
    assert runner.finish() == 143
    terminal = runner.terminal()
    assert "Traceback" not in terminal
    assert f"run: interrupted by SIGTERM ({workflow}); stopped train" in terminal
    run = runner.run_json()
    assert (run["status"], run["message"]) == ("Failed", "interrupted")
    assert run["interrupted"] == {"signal": "SIGTERM", "stopped": ["train"]}
    assert run["steps"]["train"]["status"] == "Failed"
    assert "interrupted" in run["steps"]["train"]["message"]
    assert run["steps"]["evaluate"]["status"] == "Omitted"
    # The exit handler ran and recorded the end in ML Metadata.
    assert run["steps"]["record-status"]["status"] == "Succeeded"
    assert lineage(run["metadata"], workflow)["run_properties"]["status"] == "Failed"
    # Nothing the stopped step had begun reached the artifacts.
    assert not list(out.glob("artifacts/*/model"))
    assert "model" not in run["artifacts"]
    assert {"prepared", "embeddings", "spec"} <= run["artifacts"].keys()


@pytest.mark.slow
def test_two_interrupts_during_deploy_still_record_the_run_which_then_resumes(
    data_slice: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    runner = Runner(out, *slice_options(*data_slice))
    runner.wait_for(lambda: runner.started("deploy-wait"), "deploy-wait")
    # Row: Ctrl-C, and Ctrl-C again during clean-up. Before: a traceback, no exit
    # handler, and with the second one no run.json.
    runner.proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    runner.proc.send_signal(signal.SIGINT)
    assert runner.finish() == 130
    terminal = runner.terminal()
    assert "Traceback" not in terminal and "interrupted by SIGINT" in terminal
    run = runner.run_json()
    assert run["status"] == "Failed" and run["interrupted"]["signal"] == "SIGINT"
    assert run["steps"]["deploy-wait"]["status"] == "Failed"
    assert run["steps"]["record-status"]["status"] == "Succeeded"
    train_log = out / "logs" / "train.log"
    trained = train_log.read_text()

    # Resume: the deployment (a server that ended with the run) runs again; train does not.
    resumed = resume(out)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    run = json.loads((out / "run.json").read_text())
    assert (
        run["status"] == "Succeeded" and run["workflow_name"] == runner.run_json()["workflow_name"]
    )
    assert run["steps"]["train"]["resumed"] is True
    assert "resumed" not in run["steps"]["deploy-tensorflow"]
    assert train_log.read_text() == trained
    with pytest.raises(requests.ConnectionError):  # its server stopped with the run
        requests.get(f"{run['endpoint']}/v1/models/textcnn", timeout=2)
