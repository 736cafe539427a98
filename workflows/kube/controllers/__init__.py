"""The controllers of the local Kubernetes API: what a cluster's controllers do with the
objects the pipeline creates, over the store (workflows.kube.objects), with local
processes for pods.

- manager.py: `Manager` runs every controller's reconcile on each store change and
  periodically; `wait_for` waits on a condition of the store;
- claims.py: `Claims`, PersistentVolumeClaims bound to folders of the run;
- tfjob.py: `TFJobs`, the Training Operator (replicas.py: a replica's pod as a process;
  tfjob_status.py: the status it writes);
- trainjob.py: `TrainJobs`, Kubeflow Trainer v2 with JobSet and the Job controller
  (trainjob_pods.py: the pods a TrainJob becomes);
- inference_services.py: `InferenceServices`, KServe with the Deployment controller or
  Knative under it (kserve.py: what KServe writes; deployment.py, knative.py: the pods
  or revisions and their status; pods.py: a model server; conditions.py: Knative's
  condition sets; addresses.py: the cluster's host names; endpoints.py: what outlives a
  run).
"""

from __future__ import annotations

from workflows.kube.controllers.claims import Claims
from workflows.kube.controllers.inference_services import InferenceServices
from workflows.kube.controllers.manager import Controller, Manager, log_to, wait_for
from workflows.kube.controllers.tfjob import TFJobs
from workflows.kube.controllers.trainjob import TrainJobs

__all__ = [
    "Claims",
    "Controller",
    "InferenceServices",
    "Manager",
    "TFJobs",
    "TrainJobs",
    "log_to",
    "wait_for",
]
