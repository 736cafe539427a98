"""textcnn.cpus: the CPUs a step may use, from its cores, cgroup quota and pod request."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from textcnn import cpus

CORES = len(os.sched_getaffinity(0))


def test_the_cores_bound_the_count(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(cpus.REQUEST_ENV, raising=False)
    monkeypatch.setattr(cpus, "CGROUP_CPU_MAX", tmp_path / "none")
    assert cpus.available() == CORES
    monkeypatch.setenv(cpus.REQUEST_ENV, str(CORES + 8))  # a request above the cores
    assert cpus.available() == CORES


def test_a_cgroup_quota_and_a_pod_request_lower_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cpu_max = tmp_path / "cpu.max"
    monkeypatch.setattr(cpus, "CGROUP_CPU_MAX", cpu_max)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(64)))  # a big node
    monkeypatch.delenv(cpus.REQUEST_ENV, raising=False)
    cpu_max.write_text("max 100000\n")  # no limit
    assert cpus.available() == 64
    cpu_max.write_text("250000 100000\n")  # a limit of 2.5 CPUs: 3 threads
    assert cpus.available() == 3
    monkeypatch.setenv(cpus.REQUEST_ENV, "2")  # requests.cpu 1500m, divisor 1: "2"
    assert cpus.available() == 2
    monkeypatch.setenv(cpus.REQUEST_ENV, "0")  # not a count: ignored
    assert cpus.available() == 3


def test_tensorflow_gets_that_many_threads() -> None:
    code = (
        "import tensorflow as tf; from textcnn import cpus; n = cpus.limit_tensorflow(); "
        "print(n, tf.config.threading.get_intra_op_parallelism_threads(), "
        "tf.config.threading.get_inter_op_parallelism_threads())"
    )
    env = {**os.environ, cpus.REQUEST_ENV: "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["1", "1", "1"]
