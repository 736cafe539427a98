"""Processes on this machine, the one way: what runs a step's container, a TFJob replica
or a model server. Each starts in its own session (a signal to the runner does not reach
it; the runner stops whole process groups), logs to a file, stops with SIGTERM and then,
after a grace period as a pod's `terminationGracePeriodSeconds`, SIGKILL, and is reaped
with its peak memory."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

GRACE_S = 10.0  # Kubernetes' default terminationGracePeriodSeconds is 30; 10 is enough here

Process = subprocess.Popen[bytes]


def start(
    command: Sequence[str],
    log: Path | IO[bytes] | IO[str],
    env: Mapping[str, str],
    *,
    header: str = "",
    stdin: int | IO[bytes] = subprocess.DEVNULL,
) -> Process:
    """Start `command` with stdout and stderr to `log` (a path, written afresh after
    `header` and the command line, or an open file, appended to)."""
    if isinstance(log, Path):
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out:
            out.write(f"{header}$ {shlex.join(command)}\n")
            out.flush()
            return start(command, out, env, stdin=stdin)
    return subprocess.Popen(
        list(command),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=stdin,
        env=dict(env),
        start_new_session=True,
    )


def signal_group(proc: Process, sig: int) -> None:
    """Send `sig` to the process's group (its session), if it still runs."""
    if proc.returncode is None:  # once reaped, its pid may be another's
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


def stop(proc: Process, grace_s: float = GRACE_S) -> bool:
    """SIGTERM to the group, SIGKILL after `grace_s`, and reap; True if it was running."""
    if proc.poll() is not None:
        return False
    signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        signal_group(proc, signal.SIGKILL)
        proc.wait()
    return True


def exit_code(returncode: int) -> int:
    """As Kubernetes reports a container's: 128 + the signal for one killed by a signal."""
    return 128 - returncode if returncode < 0 else returncode


def reap(proc: Process) -> tuple[int, float | None]:
    """Wait for the process: (its exit code, its peak resident memory in MiB if known)."""
    try:
        # wait4 rather than wait: the kernel reports the process's peak RSS (KiB on Linux).
        # Linux starts that count at the parent's own resident size when it forks the
        # child: a floor under small processes.
        _, status, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:  # already reaped by a stop's wait
        proc.wait()
        return exit_code(proc.returncode), None
    proc.returncode = os.waitstatus_to_exitcode(status)
    return exit_code(proc.returncode), usage.ru_maxrss / 1024


def tail(log: Path, lines: int = 3) -> str:
    """The log's last lines, joined with ` | `, for a one-line message."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(text.splitlines()[-lines:])
