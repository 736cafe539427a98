"""record-status: the exit handler, so every run's final status reaches ML Metadata."""

from __future__ import annotations

from textcnn import metadata


def run(metadata_store: str, run_name: str, status: str, failures: str = "") -> None:
    """The exit handler: record the workflow's final status (and Argo's failures JSON) on
    the run in ML Metadata; it runs whether the DAG succeeded or not."""
    metadata.record_run_status(metadata_store, run_name=run_name, status=status, message=failures)
    print(f"{run_name}: {status}")
