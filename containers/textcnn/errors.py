"""Errors a step reports with one `error:` line and exit code 2, which Argo's retry
strategy (and the local runner) never retries; any other failure may be bad luck (an
evicted pod, a lost node, a 5xx or a timeout from GCS) and is retried."""

NOT_RETRIED = 2  # the exit code of the errors below


class InputError(Exception):
    """Bad input data or options: the message names the file, column, row or option and
    what to do."""


class FinalError(RuntimeError):
    """An outcome that running again cannot change: the TFJob failed, the model does not
    load in the server. The message says what was seen."""
