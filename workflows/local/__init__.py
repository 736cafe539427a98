"""The local Argo: runs a compiled WorkflowTemplate (a dict) on this machine, with no cluster.

What passes here is what Argo runs: the same template dict, the same `depends` and `when`
semantics (workflows.expressions), parameters and key-only artifacts passed through an
artifact root, each container's real command run as a subprocess, and resource templates
handed to stand-ins that do the real work (stand_ins/). Pod paths are remapped under
`<output_dir>/pods/<task>/`, each task logs to `<output_dir>/logs/<task>.log`.

- store.py: the artifact repository (a folder or gs://), keys loaded as Argo's GCS driver;
- substitution.py: `{{...}}`, `$(VAR)`, pod paths and claims on this machine;
- plan.py: tasks, parameters, volumes, each task prepared and checked before anything runs;
- execute.py: `run_workflow`, running the plan; result.py: run.json.
"""
