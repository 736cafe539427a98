"""`python -m workflows run` as a user meets it, when things go wrong: stops that clean up,
one run per folder, resume, no hangs, and messages rather than tracebacks.

Every test here checks /proc, through `no_orphans`, that no process is left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import requests
from helpers import REPO, SMALL, pipeline_command, pipeline_env, run_pipeline

from textcnn import metadata, registry
from textcnn.metadata import lineage
from workflows.local.folder import LOCK, WORKFLOW

pytestmark = pytest.mark.usefixtures("no_orphans")


class Runner:
    """A pipeline run in the background, its output in files (no pipe can fill up)."""

    def __init__(self, out: Path, *options: str, resume: bool = False) -> None:
        self.out, self.log = out, out.parent / f"{out.name}.terminal"
        command = resume_command(out, *options) if resume else pipeline_command(out, *options)
        with self.log.open("w") as terminal:
            self.proc = subprocess.Popen(
                command,
                cwd=REPO,
                stdout=terminal,
                stderr=subprocess.STDOUT,
                env=pipeline_env(),
            )

    def wait_for(self, condition: Callable[[], bool], what: str, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert self.proc.poll() is None, f"ended before {what}: {self.terminal()}"
            assert time.monotonic() < deadline, f"no {what} after {timeout_s} s"
            time.sleep(0.05)

    def started(self, task: str) -> bool:
        """Whether the task's process has its command line: the runner writes it to the
        task's log as it starts the process (or hands it to the one started warm)."""
        log = self.out / "logs" / f"{task}.log"
        return log.is_file() and "\n$ " in "\n" + log.read_text(errors="replace")

    def finish(self, timeout_s: float = 120) -> int:
        return self.proc.wait(timeout_s)

    def terminal(self) -> str:
        return self.log.read_text(errors="replace")

    def run_json(self) -> dict:
        return json.loads((self.out / "run.json").read_text())


def step_running(step: str) -> bool:
    """Whether the process of a step of our CLI (`python -m textcnn STEP`) runs now."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if f"\0textcnn\0{step}\0".encode() in cmdline.read_bytes():
                return True
    return False


def resume_command(out: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "workflows", "run", "--resume", str(out), *options]


def resume(out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        resume_command(out),
        cwd=REPO,
        capture_output=True,
        text=True,
        env=pipeline_env(),
    )


def slice_options(train: Path, test: Path) -> list[str]:
    return ["--train_data_path", str(train), "--test_data_path", str(test), *SMALL]


@pytest.fixture(scope="module")
def flipped(data_slice: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The slice's training set with its two labels swapped: a model trained on it scores
    well below one trained on the slice, on the same test set, whatever the seed."""
    train, _ = data_slice
    frame = pd.read_csv(train)
    labels = sorted(frame["label"].unique())
    assert len(labels) == 2
    frame["label"] = frame["label"].map(dict(zip(labels, reversed(labels), strict=True)))
    path = tmp_path_factory.mktemp("flipped") / "train.csv"
    frame.to_csv(path, index=False)
    return path


def serving_uri(store: str) -> str | None:
    found = registry.serving(store, registry.endpoint_key("default", "textcnn"))
    return None if found is None else found.model_uri


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
    # Row (issue 29, finding 9): --resume of it. Before: "no local run to resume there".
    resuming = resume(out)
    assert resuming.returncode == 2
    assert f"is in use by workflow {workflow!r}" in resuming.stderr

    # Row: SIGTERM while train runs. Before: the runner died at once, no run.json, and
    # train went on as an orphan, writing a model.
    runner.proc.send_signal(signal.SIGTERM)
    assert runner.finish() == 143
    terminal = runner.terminal()
    assert "Traceback" not in terminal
    run = runner.run_json()
    assert (run["status"], run["message"]) == ("Failed", "interrupted")
    # fit-ngrams runs beside train, and may have finished first.
    stopped = run["interrupted"]["stopped"]
    assert "train" in stopped and set(stopped) <= {"fit-ngrams", "train"}
    assert run["interrupted"]["signal"] == "SIGTERM"
    assert f"run: interrupted by SIGTERM ({workflow}); stopped {', '.join(stopped)}" in terminal
    assert run["steps"]["train"]["status"] == "Failed"
    assert "interrupted" in run["steps"]["train"]["message"]
    assert run["steps"]["evaluate"]["status"] == "Omitted"
    # The exit handler ran and recorded the end in ML Metadata.
    assert run["steps"]["record-status"]["status"] == "Succeeded"
    assert lineage(run["metadata"], workflow)["run_properties"]["status"] == "Failed"
    # Nothing the stopped step had begun reached the artifacts.
    assert not list(out.parent.glob("artifacts/**/model"))
    assert not list(out.parent.glob("artifacts/**/cnn"))
    assert not {"cnn", "model"} & run["artifacts"].keys()
    assert {"prepared", "embeddings", "spec"} <= run["artifacts"].keys()


@pytest.mark.slow
def test_two_interrupts_during_deploy_still_record_the_run_which_then_resumes(
    data_slice: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    runner = Runner(out, *slice_options(*data_slice))
    runner.wait_for(lambda: runner.started("deploy-wait"), "deploy-wait")
    # Row: Ctrl-C, and Ctrl-C again while the exit handler runs. Before: a traceback, no
    # exit handler, and with the second one no run.json; then (issue 29, finding 10) the
    # second one SIGKILLed the exit handler (137) and ML Metadata never had the outcome.
    runner.proc.send_signal(signal.SIGINT)
    runner.wait_for(lambda: step_running("record-status"), "the exit handler's process")
    runner.proc.send_signal(signal.SIGINT)
    assert runner.finish() == 130
    terminal = runner.terminal()
    assert "Traceback" not in terminal and "interrupted by SIGINT" in terminal
    run = runner.run_json()
    assert run["status"] == "Failed" and run["interrupted"]["signal"] == "SIGINT"
    assert run["steps"]["deploy-wait"]["status"] == "Failed"
    assert run["steps"]["record-status"]["status"] == "Succeeded"
    assert lineage(run["metadata"], run["workflow_name"])["run_properties"]["status"] == "Failed"
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
        requests.get(f"{run['local_endpoint']}/v1/models/textcnn", timeout=2)


@pytest.mark.slow
def test_a_run_that_failed_at_evaluate_resumes_without_training_again(
    data_slice: tuple[Path, Path], tmp_path: Path
) -> None:
    train, test = data_slice
    out = tmp_path / "run"
    runner = Runner(out, *slice_options(train, test))
    # Once training has begun, damage the test rows check-data kept for evaluate in the
    # artifact repository beside the run (a storage fault: the test CSV itself is read
    # only before training): evaluate fails on a label the model never saw.
    runner.wait_for(lambda: runner.started("train"), "train")
    (flaky,) = (tmp_path / "artifacts").glob("cache/*/data-checks/test.csv")
    kept = flaky.read_bytes()
    flaky.write_text("text,label\nA new kind of film.,meh\n")
    assert runner.finish(300) == 1
    failed = runner.run_json()
    assert failed["steps"]["evaluate"]["status"] == "Failed"
    assert failed["steps"]["train"]["status"] == "Succeeded"
    train_log = (out / "logs" / "train.log").read_text()

    flaky.write_bytes(kept)  # the artifact mended
    resumed = Runner(out, "--keep_serving", resume=True)
    resumed.wait_for(lambda: "serving textcnn at" in resumed.terminal(), "serving")
    run = resumed.run_json()
    assert run["status"] == "Succeeded"
    assert run["workflow_name"] == failed["workflow_name"]
    assert run["parameters"] == failed["parameters"]
    kept = {n for n, s in run["steps"].items() if s.get("resumed")}
    assert {"validate-params", "prepare-data", "embeddings", "model-metadata", "train"} <= kept
    assert "evaluate" not in kept and run["steps"]["evaluate"]["status"] == "Succeeded"
    assert (out / "logs" / "train.log").read_text() == train_log  # not trained again
    assert run["artifacts"]["model"] == failed["artifacts"]["model"]

    # The lineage is whole, in the one run context: one Train, whose model Evaluate read,
    # and both ends of the run recorded.
    graph = lineage(run["metadata"], run["workflow_name"])
    executions = [e["type"] for e in graph["executions"]]
    assert executions.count("Train") == executions.count("Evaluate") == 1
    (model,) = [a for a in graph["artifacts"] if a["type"] == "Model"]
    assert model["uri"] == run["artifacts"]["model"]
    (evaluate,) = [e for e in graph["executions"] if e["type"] == "Evaluate"]
    assert {"artifact_id": model["id"], "execution_id": evaluate["id"], "type": "INPUT"} in [
        {k: e[k] for k in ("artifact_id", "execution_id", "type")} for e in graph["events"]
    ]
    props = graph["run_properties"]
    assert props["status"] == "Succeeded" and props["attempts"] == 2
    assert [h["status"] for h in json.loads(props["history"])] == ["Failed", "Succeeded"]

    # Row: SIGTERM while --keep_serving serves. Before: the model server stayed up.
    assert requests.get(f"{run['local_endpoint']}/v1/models/textcnn", timeout=5).ok
    resumed.proc.send_signal(signal.SIGTERM)
    assert resumed.finish() == 143
    assert "SIGTERM: stopped 1 model server" in resumed.terminal()
    assert "Traceback" not in resumed.terminal()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{run['local_endpoint']}/v1/models/textcnn", timeout=2)

    # Nothing is left to resume.
    again = resume(out)
    assert again.returncode == 2 and "that run succeeded" in again.stderr


@pytest.mark.slow
def test_a_resumed_run_gates_again_against_what_serves_now(
    data_slice: tuple[Path, Path], flipped: Path, tmp_path: Path
) -> None:
    """Issue 29, finding 1: before, the resumed run kept its gate's "nothing serves yet,
    deploy" and replaced the better model that had been deployed since."""
    train, test = data_slice
    worse = Runner(tmp_path / "worse", *slice_options(flipped, test))
    worse.wait_for(lambda: worse.started("deploy-wait"), "deploy-wait")
    worse.proc.send_signal(signal.SIGTERM)
    assert worse.finish() == 143
    interrupted = worse.run_json()
    assert interrupted["steps"]["gate"]["status"] == "Succeeded"
    store = interrupted["metadata"].removeprefix("sqlite:")

    better = run_pipeline(tmp_path / "better", *slice_options(train, test))
    assert better.returncode == 0, better.stdout + better.stderr
    best = json.loads((tmp_path / "better" / "run.json").read_text())
    assert serving_uri(f"sqlite:{store}") == best["artifacts"]["model"]

    # Finding 9: a kept step's artifact deleted since. Before: the resume never noticed.
    shutil.rmtree(interrupted["artifacts"]["metrics"])
    resumed = resume(tmp_path / "worse")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "evaluate" in resumed.stdout and "its artifact 'metrics' is gone" in resumed.stdout
    run = worse.run_json()
    assert run["steps"]["train"]["resumed"] is True
    assert not {"evaluate", "gate"} & {n for n, s in run["steps"].items() if s.get("resumed")}
    assert run["outputs"]["gate_decision"] == "skip"
    accuracy = best["metrics"]["accuracy"]
    assert f"serving {accuracy:.4f}" in run["outputs"]["gate_reason"]
    assert serving_uri(f"sqlite:{store}") == best["artifacts"]["model"]


@pytest.mark.slow
def test_a_run_paused_between_gate_and_deploy_keeps_the_endpoint_until_it_ends(
    data_slice: tuple[Path, Path], flipped: Path, tmp_path: Path
) -> None:
    """Issue 29, finding 2: before, the better run deployed while the worse one was paused
    after its gate; the worse one then went on and replaced it."""
    train, test = data_slice
    worse = Runner(tmp_path / "worse", *slice_options(flipped, test))
    worse.wait_for(lambda: worse.started("gate"), "gate")
    worse.proc.send_signal(signal.SIGSTOP)  # the runner: its gate goes on, nothing after it
    try:
        better = Runner(tmp_path / "better", *slice_options(train, test))
        better.wait_for(lambda: "waiting for mutex" in better.terminal(), "the endpoint's mutex")
        assert "default/Mutex/textcnn-endpoint-textcnn, held by workflow" in better.terminal()
    finally:
        worse.proc.send_signal(signal.SIGCONT)
    assert worse.finish(300) == 0, worse.terminal()
    assert better.finish(300) == 0, better.terminal()
    first, second = worse.run_json(), better.run_json()
    assert first["outputs"]["gate_decision"] == "deploy"
    # The better run gated after the worse one's deploy, against it.
    assert second["outputs"]["gate_decision"] == "deploy"
    assert f"serving {first['metrics']['accuracy']:.4f}" in second["outputs"]["gate_reason"]
    assert serving_uri(second["metadata"]) == second["artifacts"]["model"]


def test_a_run_folder_is_data_not_code(data_slice: tuple[Path, Path], tmp_path: Path) -> None:
    """Issue 29, findings 5 and 9: what --resume refuses, and how it says so."""
    _, test = data_slice
    out = tmp_path / "runs" / "run"
    fifo = _fifo(tmp_path / "train.csv")
    failed = run_pipeline(out, "--train_data_path", str(fifo), "--test_data_path", str(test))
    assert failed.returncode == 1  # validate-params refuses the FIFO: a run to resume
    saved = (out / WORKFLOW).read_text()

    # Row: the exit handler made to run a shell. Before: --resume ran it, as root.
    workflow = json.loads(saved)
    (record,) = [t for t in workflow["spec"]["templates"] if t["name"] == "record-status"]
    record["container"]["command"] = ["sh", "-c", f"id > {tmp_path / 'pwned'}"]
    (out / WORKFLOW).write_text(json.dumps(workflow))
    refused = resume(out)
    assert refused.returncode == 2
    assert "its workflow.json is not the template this code compiles" in refused.stderr
    assert re.search(r"differ at \$\.spec\.templates\[\d+\]\.container\.command\)", refused.stderr)
    assert not (tmp_path / "pwned").exists()
    (out / WORKFLOW).write_text(saved)

    # Row: the folder moved to another parent. Before: it resumed into the old parent's
    # metadata.sqlite and artifacts, and the new parent's endpoint state.
    moved = tmp_path / "elsewhere" / "run"
    moved.parent.mkdir()
    out.rename(moved)
    refused = resume(moved)
    assert refused.returncode == 2
    assert f"this run was made in {out}" in refused.stderr and "move it back" in refused.stderr
    moved.rename(out)

    # Rows: run.json sends the run's writes elsewhere. Before: it resumed there.
    original = (out / "run.json").read_text()
    run = json.loads(original)
    elsewhere = str(tmp_path / "elsewhere.sqlite")
    run["parameters"]["metadata_store"] = f"sqlite:{elsewhere}"
    (out / "run.json").write_text(json.dumps(run))
    refused = resume(out)
    assert refused.returncode == 2
    assert f"its --metadata_store is 'sqlite:{elsewhere}'; give --metadata_store" in refused.stderr
    run = json.loads(original)
    run["artifact_root"] = str(tmp_path)
    (out / "run.json").write_text(json.dumps(run))
    refused = resume(out)
    assert refused.returncode == 2
    assert f"its --artifact_root is '{tmp_path}'; give --artifact_root" in refused.stderr

    # Row: a run.json without artifact_root. Before: KeyError and a traceback.
    run = json.loads(original)
    del run["artifact_root"]
    (out / "run.json").write_text(json.dumps(run))
    refused = resume(out)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"error: --resume {out}: its run.json cannot be resumed: it names no artifact_root"
    )


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def test_a_fifo_input_fails_validation_and_a_finished_folder_is_kept_unless_overwritten(
    data_slice: tuple[Path, Path], tmp_path: Path
) -> None:
    _, test = data_slice
    fifo = _fifo(tmp_path / "train.csv")
    out = tmp_path / "run"
    # Row: the train CSV is a FIFO. Before: dataset-metadata and prepare-data blocked.
    proc = subprocess.run(
        pipeline_command(out, "--train_data_path", str(fifo), "--test_data_path", str(test)),
        cwd=REPO,
        capture_output=True,
        text=True,
        env=pipeline_env(),
        timeout=120,
    )
    assert proc.returncode == 1
    assert f"--train_data_path {fifo}: is a FIFO (named pipe), not a regular file" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["steps"]["validate-params"]["status"] == "Failed"
    assert "retries" not in run["steps"]["validate-params"]  # a user error: not retried
    assert run["steps"]["dataset-metadata-train"]["status"] == "Omitted"

    # Row: a run into a folder that holds a finished run. Before: old and new side by side.
    options = ["--train_data_path", str(fifo), "--test_data_path", str(test)]
    refused = run_pipeline(out, *options)
    assert refused.returncode == 2
    assert f"--output_dir {out} holds an earlier run: pass --overwrite" in refused.stderr
    assert json.loads((out / "run.json").read_text()) == run  # untouched
    (out / "logs" / "left-over.log").write_text("from the earlier run")
    again = run_pipeline(out, *options, "--overwrite")
    assert again.returncode == 1
    assert not (out / "logs" / "left-over.log").exists()  # emptied first
    assert json.loads((out / "run.json").read_text())["workflow_name"] != run["workflow_name"]


def test_a_damaged_metadata_store_fails_the_run_before_any_step(
    data_slice: tuple[Path, Path], tmp_path: Path
) -> None:
    # Row: metadata.sqlite cut short by `head -c 20000`. Before: 2 min 33 s to fail, with
    # dataset-metadata-train, model-metadata and record-status each run 4 times (retried
    # as bad luck) and ML Metadata's RuntimeError the last line of the log.
    store = tmp_path / "metadata.sqlite"
    metadata.record_artifact(
        f"sqlite:{store}", run_name="r", type_name="D", uri="/d", properties={}
    )
    store.write_bytes(store.read_bytes()[:20000])
    out = tmp_path / "run"
    proc = run_pipeline(out, *slice_options(*data_slice))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {store}: not an ML Metadata store (SQLite: database disk image is "
        "malformed); move it aside (a fresh store is created where there is none) or pass "
        "--metadata_store sqlite:ANOTHER_PATH"
    ]
    assert not out.exists()  # no step ran
    assert len(store.read_bytes()) == 20000


def test_an_output_folder_under_a_quote_is_refused_naming_output_dir(tmp_path: Path) -> None:
    """The runner keeps the metadata store and the artifacts beside the run folder, and a
    model's path lands single-quoted in the InferenceService manifest."""
    out = tmp_path / "it's" / "run"
    # Before: `--metadata_store: a path holds no "'"`, an option the user never gave.
    proc = run_pipeline(out)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: --output_dir {out}: the metadata store and the artifacts go beside the run "
        f"folder, in {out.parent}, where a path holds no \"'\" (a model's path lands quoted "
        "in the InferenceService manifest); choose a folder whose path has none, or give "
        "--metadata_store and --artifact_root"
    ]
    # Before: with --metadata_store given, the run trained and failed at deploy, on the
    # manifest's YAML.
    proc = run_pipeline(out, "--metadata_store", f"sqlite:{tmp_path / 'md.sqlite'}")
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        f"error: --output_dir {out}: the artifacts go beside the run folder, in {out.parent},"
    )
    assert proc.stderr.strip().endswith("or give --artifact_root")
    assert list(tmp_path.iterdir()) == []  # nothing made


def test_a_folder_holding_something_else_is_never_emptied(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("years of work")
    proc = run_pipeline(tmp_path, "--overwrite")
    assert proc.returncode == 2
    assert "is not empty and holds no run (thesis.tex)" in proc.stderr
    assert (tmp_path / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.lock", "thesis.tex"]


def test_an_unwritable_output_folder_is_one_error_line(tmp_path: Path) -> None:
    # Row: the output folder is read-only. Before: `OSError: [Errno 30]` and a traceback.
    if os.geteuid() == 0:  # root writes through permissions, but not into sysfs
        out = Path("/sys/kernel/textcnn-run")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        out = locked / "run"
    proc = run_pipeline(out)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --output_dir {out}: cannot write")
    assert "choose a writable folder" in lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr
