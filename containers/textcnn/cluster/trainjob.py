"""Whether a TrainJob (trainer.kubeflow.org/v1alpha1, Kubeflow Trainer v2.3.0) has
succeeded, failed (and why), or is on its way: `judge`, a pure function of the object.

The trainer sets three condition types only (pkg/apis/trainer/v1alpha1/trainjob_types.go):

- `Complete=True`: the JobSet's `Completed` condition, copied with its type renamed and
  its reason and message kept (pkg/runtime/framework/plugins/jobset/jobset.go, `Status`):
  "jobset completed successfully" (AllJobsCompleted).
- `Failed=True` is final: the JobSet's `Failed` condition copied the same way ("jobset
  failed due to one or more job failures (first failed job: ...)", FailedJobs; "...
  reaching max number of restarts ...", ReachedMaxRestarts), or the trainer's own
  (pkg/controller/trainjob_controller.go): "TrainJob exceeded its active deadline"
  (DeadlineExceeded), "unsupported runtime: ..." (TrainingRuntimeNotSupported).
- `Suspended=True`: waiting until resumed.

A TrainJob that runs has no condition at all; its `jobsStatus` (the JobSet's
replicatedJobsStatus: Job counts) says how far it got. Finished means Complete or Failed
True (pkg/util/trainjob/trainjob.go, `IsTrainJobFinished`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from textcnn.cluster.jobs import Verdict, observed, tally

GROUP, VERSION, PLURAL = "trainer.kubeflow.org", "v1alpha1", "trainjobs"
JOB_COUNTS = ("active", "ready", "succeeded", "failed")


def _jobs(status: Mapping[str, Any]) -> str:
    jobs = {str(j.get("name", "?")): j for j in status.get("jobsStatus") or []}
    return tally(jobs, JOB_COUNTS, "no Job started", sep=": ")


def judge(trainjob: Mapping[str, Any]) -> Verdict:
    """The verdict on a TrainJob object (as the API server returns it)."""
    name, status, true = observed(trainjob)
    jobs = _jobs(status)
    detail = f" [jobs: {jobs}]" if jobs else ""
    said = {
        kind: f"TrainJob {name}: {c.get('message') or 'no message'} "
        f"({c.get('reason') or 'no reason given'}){detail}"
        for kind, c in true.items()
    }
    if "Failed" in said:
        return Verdict("failed", said["Failed"])
    if "Complete" in said:
        return Verdict("succeeded", said["Complete"])
    if "Suspended" in true:
        return Verdict("waiting", f"TrainJob {name} is suspended{detail}")
    if not jobs:
        return Verdict(
            "waiting",
            f"TrainJob {name} has no JobSet yet (is the Kubeflow Trainer controller "
            "running, is its ClusterTrainingRuntime installed, are its pods schedulable?)",
        )
    return Verdict("waiting", f"TrainJob {name} is running{detail}")
