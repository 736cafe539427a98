"""The CPUs a step may use, and TensorFlow and Word2Vec set to use them.

The count is the cores this process may run on, bounded by its cgroup's CPU quota (a
container's CPU limit, `/sys/fs/cgroup/cpu.max`) and by the CPU request its pod spec
passes down in CPU_REQUEST (the downward API's `requests.cpu` with divisor 1: the request
rounded up to whole cores). The pods of this pipeline request CPUs and set no CPU limit,
so without CPU_REQUEST a step on a 64-core node would start 64 threads for the few cores
the scheduler set aside for it. Locally, it is the machine's cores.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

REQUEST_ENV = "CPU_REQUEST"
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def _quota() -> int | None:
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()
        return None if quota == "max" else math.ceil(int(quota) / int(period))
    except (OSError, ValueError):
        return None


def available() -> int:
    """How many CPUs this step may keep busy (at least 1)."""
    bounds = [len(os.sched_getaffinity(0))]
    if (quota := _quota()) is not None:
        bounds.append(quota)
    request = os.environ.get(REQUEST_ENV, "")
    if request.isdigit() and int(request) > 0:
        bounds.append(int(request))
    return max(1, min(bounds))


def limit_tensorflow() -> int:
    """TensorFlow's thread pools sized to `available()`; call before TensorFlow starts its
    runtime (before the first op or strategy), as a step's process does. In a process
    whose runtime runs already (a test calling several steps) the pools stay as they are.
    Returns the count."""
    import tensorflow as tf

    n = available()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:  # "cannot be modified after initialization"
        pass
    return n
