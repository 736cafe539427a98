"""The one error of the workflow side (DAG rules, the local runner): a workflow, a template
or an option that cannot run as given. The message names the task, template or parameter
and what to do."""


class WorkflowError(ValueError):
    """A workflow that cannot run as given."""
