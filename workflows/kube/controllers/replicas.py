"""A training pod as a process (a TFJob replica, a TrainJob node): what its controller puts
in the pod (for a TFJob, `TF_CONFIG` in the `tensorflow` container: `SetClusterSpec`,
tensorflow.go `genTFConfigJSONStr`) and what the kubelet does with it (the volumes
mounted, the downward API and `$(VAR)` expanded, the container restarted as its
restartPolicy says).

The image is stood in for by the `runs` hook, which gets the image, the command and the
environment and returns the command and environment that run them here. Volumes: a
persistentVolumeClaim is the claim's folder, an emptyDir a folder of the replica; other
volume types cannot be had here (`Unsupported`).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from workflows.kube.controllers.ports import free_ports
from workflows.local import processes
from workflows.local.downward import field_env, resource_env
from workflows.local.substitution import expand_env_refs, remap_path

CONTAINER = "tensorflow"  # the operator sets TF_CONFIG in this container only
# The kubelet restarts a failed container at once, then after 10 s, doubling up to 5 min
# (kubernetes.io, pod lifecycle: container restarts).
BACKOFF_S, MAX_BACKOFF_S = 10.0, 300.0

Runs = Callable[[str, list[str], dict[str, str]], tuple[list[str], dict[str, str]]]
Phase = Literal["Running", "Succeeded", "Failed"]


class Unsupported(Exception):
    """The pod asks for what cannot be had on this machine."""


def tf_configs(name: str, counts: Mapping[str, int]) -> dict[tuple[str, int], str]:
    """Each replica's TF_CONFIG (`genTFConfigJSONStr`): the whole cluster by lower-case
    type, one free loopback port per replica where the operator names each replica's
    headless Service; `environment` "cloud". None for a job of one replica
    (`isDistributed`)."""
    roles = [(rtype, i) for rtype, n in counts.items() for i in range(n)]
    if len(roles) == 1:
        return {}
    ports = iter(free_ports(len(roles)))
    cluster: dict[str, list[str]] = {}
    for rtype, _ in roles:
        cluster.setdefault(rtype.lower(), []).append(f"127.0.0.1:{next(ports)}")
    cluster = dict(sorted(cluster.items()))  # Go marshals a map's keys sorted
    return {
        (rtype, i): json.dumps(
            {
                "cluster": cluster,
                "task": {"type": rtype.lower(), "index": i},
                "environment": "cloud",
            }
        )
        for rtype, i in roles
    }


def mounts(
    pod: Mapping[str, Any], container: Mapping[str, Any], claim: Callable[[str], Path], own: Path
) -> dict[str, Path]:
    """Mount path -> local folder, for the container's volumeMounts."""
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    found = {}
    for m in container.get("volumeMounts") or []:
        volume = volumes.get(m["name"], {})
        if "persistentVolumeClaim" in volume:
            local = claim(volume["persistentVolumeClaim"]["claimName"])
        elif "emptyDir" in volume:
            local = own / "volumes" / m["name"]
        else:
            raise Unsupported(
                f"volume {m['name']!r}: only persistentVolumeClaim and emptyDir volumes "
                "can be mounted here"
            )
        local.mkdir(parents=True, exist_ok=True)
        found[m["mountPath"]] = local / m.get("subPath", "")
    return found


@dataclass
class Replica:
    """One replica's pod: its container's command and environment, ready to run."""

    rtype: str
    index: int
    restart_policy: str
    image: str
    command: list[str]
    env: dict[str, str]
    log: Path
    injected: dict[str, str] = field(default_factory=dict)  # what its controller set
    proc: processes.Process | None = None
    restarts: int = 0  # the container's restartCount
    exited_at: float = 0.0
    code: int | None = field(default=None)  # the exit code, once it exited

    @property
    def started(self) -> bool:
        return self.proc is not None

    @property
    def phase(self) -> Phase:
        """The pod's phase: a container the kubelet restarts keeps its pod Running."""
        code = self.exit_code()
        if code is None or self.restarts_on(code):
            return "Running"
        return "Succeeded" if code == 0 else "Failed"

    def exit_code(self) -> int | None:
        """The exit code once the process ended (None while it runs)."""
        if self.code is None and self.proc is not None and self.proc.poll() is not None:
            self.code, self.exited_at = processes.exit_code(self.proc.returncode), time.monotonic()
        return self.code

    def restarts_on(self, code: int) -> bool:
        """Whether the kubelet restarts the container after exit `code`: the pod's
        restartPolicy, where ExitCode is Never (common/pod.go `SetRestartPolicy`)."""
        return self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and code != 0)

    def restart_due(self) -> bool:
        """Exited, to be restarted by the kubelet, and its back-off has passed."""
        code = self.exit_code()
        if code is None or not self.restarts_on(code):
            return False
        wait = min(BACKOFF_S * 2 ** (self.restarts - 1), MAX_BACKOFF_S) if self.restarts else 0.0
        return time.monotonic() >= self.exited_at + wait

    def start(self, runs: Runs, restart: bool = False) -> None:
        """Start the container: the first time, or again (`restart`: the kubelet's, counted
        in restartCount; else a new pod of the same name), the log appended to."""
        command, env = runs(self.image, list(self.command), dict(self.env))
        if self.proc is None:
            header = "".join(f"{k}={v}\n" for k, v in self.injected.items())
            self.proc = processes.start(command, self.log, env, header=header)
            return
        self.restarts += restart
        with self.log.open("a") as out:
            out.write(
                f"--- {'restarted' if restart else 'recreated'} after exit code {self.code}\n"
            )
            out.flush()
            self.proc = processes.start(command, out, env)
        self.code = None

    def stop(self) -> None:
        if self.proc is not None:
            processes.stop(self.proc)
            self.exit_code()


def replica(
    template: Mapping[str, Any],
    where: tuple[str, int, str],
    base_env: Mapping[str, str],
    claim: Callable[[str], Path],
    own: Path,
    log: Path,
    *,
    container: str = CONTAINER,
    injected: Mapping[str, str] | None = None,
) -> Replica:
    """The replica `where` (type, index, restartPolicy) of a pod template, running its
    container named `container`: its mounts in place, the downward API (from the
    template's metadata) and `$(VAR)` expanded as the kubelet does, and `injected` (what
    the controller sets, such as TF_CONFIG) over its environment."""
    rtype, index, policy = where
    pod = template.get("spec") or {}
    main = next(c for c in pod.get("containers") or [] if c.get("name") == container)
    local = mounts(pod, main, claim, own)
    declared = {
        e["name"]: remap_path(str(e["value"]), local) for e in main.get("env") or [] if "value" in e
    }
    declared.update(resource_env(main, f"{rtype} {index}"))
    declared.update(field_env(main, template.get("metadata") or {}, f"{rtype} {index}"))
    command = [
        remap_path(expand_env_refs(str(a), declared), local)
        for a in (*(main.get("command") or []), *(main.get("args") or []))
    ]
    given = dict(injected or {})
    env = {**base_env, **declared, **given}
    return Replica(rtype, index, policy, str(main.get("image", "")), command, env, log, given)


def stop_all(replicas: list[Replica]) -> None:
    """Stop the pods together: each gets SIGTERM at once, then its grace period."""
    running = [r for r in replicas if r.proc is not None and r.proc.poll() is None]
    for r in running:
        assert r.proc is not None
        processes.signal_group(r.proc, signal.SIGTERM)
    for r in running:
        r.stop()
