"""The local Argo: runs a compiled WorkflowTemplate (a dict) on this machine, with no
cluster but a local Kubernetes API if one is given. It knows Argo, not the project that
runs it: what is the project's comes in as hooks (hooks.py).

What passes here is what Argo runs: the same template dict, the same `depends` and `when`
semantics (workflows.expressions), parameters and key-only artifacts passed through an
artifact root, each container's command run as a process, and each resource template's
manifest sent to the Kubernetes API as Argo's executor sends it. Pod paths are remapped
under `<output_dir>/pods/<task>/`, each task logs to `<output_dir>/logs/<task>.log`.

- tasks.py, jobs.py, plan.py: the Workflow read, each task prepared, all checked up front;
- scheduler.py: what comes next (ready, skipped, omitted, retried, resumed), pure;
- executor.py: one task's attempts; resources.py: resource templates through the API;
- processes.py, running.py: start, stop (TERM, then KILL), reap; what an interrupt stops;
- warm.py, live.py: processes started ahead; the running tasks' progress;
- execute.py: `run_workflow`; ledger.py, result.py: the account and run.json;
- store.py, substitution.py, folder.py, mutexes.py, signals.py, display.py: artifacts,
  `{{...}}` and paths, the run folder, Argo's mutexes, stops, the terminal.
"""
