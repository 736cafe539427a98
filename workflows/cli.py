"""`python -m workflows compile | run | serve | lint | submit`: the thin command-line layer
over the one DAG.

Every command takes the pipeline options of the original CLI (see textcnn.params) and
validates them before anything runs; `submit` adds the client's login options.
"""

from __future__ import annotations

import argparse
import errno
import json
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from textcnn.errors import InputError
from textcnn.params import ParamsError, PipelineParams, check_path
from workflows import resume, submit
from workflows.checks import lint
from workflows.dag import pipeline
from workflows.errors import WorkflowError
from workflows.local.folder import RULE
from workflows.local.signals import Interrupted, interruptible

DEFAULT_MANIFESTS = Path("manifests/workflows")
# The lightweight templates name this checkout's wheel by its content hash: not committed.
LIGHTWEIGHT_MANIFESTS = Path("build/lightweight")
STEP_REQUIREMENTS = "containers/textcnn/step_requirements.json"


def _compile(args: argparse.Namespace) -> int:
    params = PipelineParams.from_namespace(args)
    rendering = pipeline.Rendering.from_namespace(args)
    default = LIGHTWEIGHT_MANIFESTS if rendering.package else DEFAULT_MANIFESTS
    for path in pipeline.write_manifests(args.output_dir or default, params, rendering):
        print(path)
    if not args.output_dir and not rendering.package:  # the runtime beside the manifests
        print(pipeline.write_runtime(pipeline.RUNTIME_FILE, params))
    return 0


def _images(args: argparse.Namespace) -> int:
    from workflows.bundle import image_refs

    for ref in image_refs(args.registry, args.tag).values():
        print(ref)
    return 0


def _bundle(args: argparse.Namespace) -> int:
    from workflows.bundle import bundle

    print(bundle(args.output_dir, args.registry, args.tag, args.namespace).parent)
    return 0


def _requirements(args: argparse.Namespace) -> int:
    from workflows import packaging

    if args.write:
        print(packaging.write_table())
    else:
        print(json.dumps(packaging.step_requirements(), indent=1))
    return 0


# What --resume takes again, to vouch for where the run keeps its state when that is not
# beside its folder (workflows.resume.load).
VOUCHED = ("metadata_store", "artifact_root")


def _check_resume_options(args: argparse.Namespace) -> None:
    given = [
        f"--{k}"
        for k in PipelineParams.model_fields
        if getattr(args, k) is not None and k not in VOUCHED
    ]
    if given:
        raise WorkflowError(
            f"--resume runs again with the run's own options: drop {', '.join(given)}"
        )


def _check_beside(out: Path, args: argparse.Namespace) -> None:
    """The folder above the run folder holds what the runner keeps there (the metadata
    store, the artifacts) unless their options are given, so its path must pass the path
    rule; the error names --output_dir, the option the user gave."""
    kept = {"--metadata_store": "the metadata store", "--artifact_root": "the artifacts"}
    derived = [option for option in kept if not getattr(args, option[2:])]
    if not derived:
        return
    try:
        check_path(str(out.parent))
    except ValueError as e:
        artifacts = "--artifact_root" in derived
        what = " and ".join(kept[option] for option in derived)
        why = " (a model's path lands quoted in the InferenceService manifest)" if artifacts else ""
        raise WorkflowError(
            f"--output_dir {out}: {what} {'go' if artifacts else 'goes'} beside the run folder, "
            f"in {out.parent}, where {e}{why}; choose a folder whose path has none, or give "
            f"{' and '.join(derived)}"
        ) from None


def _artifact_root(text: str) -> str:
    """--artifact_root: a folder or gs://BUCKET[/PREFIX] that passes the path rule (a
    model's URI lands quoted in the InferenceService manifest)."""
    try:  # a bucket alone is a root, where the rule wants an object
        check_path(f"{text.rstrip('/')}/x" if text.startswith("gs://") else text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None
    return text


def _run(args: argparse.Namespace) -> int:
    """Run the template here. The metadata store is checked before anything runs: on a
    damaged one the first metadata step would fail only after the steps beside it."""
    from textcnn import metadata

    if args.resume is not None:
        args.output_dir = args.resume
    out = args.output_dir.resolve()
    earlier: dict[str, Any] | None = None
    if args.resume is not None:
        _check_resume_options(args)
        resumable = resume.load(out, *(getattr(args, k) for k in VOUCHED))
        earlier, template, params = resumable.earlier, resumable.template, resumable.params
        rendering, artifact_root = resumable.rendering, resumable.artifact_root
        name = resumable.workflow_name
    else:
        # The cluster default (an MLMD gRPC service) means nothing on a laptop: the store
        # beside the run folders, which every run there shares, so the gate sees what the
        # last deploy serves.
        _check_beside(out, args)
        overrides = {} if args.metadata_store else {"metadata_store": resume.store_beside(out)}
        rendering = pipeline.Rendering.from_namespace(args)
        params = rendering.parameters(PipelineParams.from_namespace(args, **overrides))
        artifact_root = args.artifact_root or resume.artifacts_beside(out)
        if rendering.package is not None:  # the wheel the lightweight steps install
            from workflows import wheel

            try:
                wheel.publish(rendering.package, artifact_root)
            except wheel.WheelError as e:
                print(f"error: the lightweight wheel: {e}", file=sys.stderr)
                return 1
        template = pipeline.render(params, rendering)[0]
        name = None
    metadata.check_store(params.metadata_store)
    return _run_here(args, template, params, out, artifact_root, name, earlier, rendering)


def _run_here(
    args: argparse.Namespace,
    template: dict[str, Any],
    params: PipelineParams,
    out: Path,
    artifact_root: str,
    name: str | None,
    earlier: dict[str, Any] | None,
    rendering: pipeline.Rendering,
) -> int:
    """Run the template on this machine, against a local cluster that lives as long. The
    run folder is the run's (checked, locked, emptied) before the cluster starts: the
    endpoint kept from an earlier run comes back up in it."""
    from workflows.hooks import project_cluster, project_hooks
    from workflows.local.display import Display
    from workflows.local.execute import LocalRun

    display = Display(sys.stdout, quiet=args.quiet)
    env = {"ARTIFACT_ROOT": artifact_root}
    run = LocalRun(
        template,
        params.to_strings(),
        out,
        artifact_root=artifact_root,
        env=env,
        hooks=project_hooks(),
        max_parallel=args.max_parallel,
        workflow_name=name,
        overwrite=args.overwrite,
        earlier=earlier,
        warm_start=not args.cold_start,
        rerun=pipeline.RERUN_ON_RESUME,
        record=resume.saved_with(out, rendering),
        on_progress=display.line,
        on_live=None if args.quiet else display.live,
    )
    with run.holding_folder(), interruptible() as stops, project_cluster(out, env) as local:
        try:
            result = run.start(local.access)
            code = _report(args, result, params, out, local)
            if code == 0 and args.keep_serving and result.extra["local_endpoint"]:
                print(
                    f"serving {params.isvc_name} at {result.extra['local_endpoint']} "
                    f"({result.extra['endpoint']} in the cluster; V1 and V2; Ctrl-C stops it)"
                )
                local.kserve.serve_forever()
        except Interrupted as stop:  # while serving, or outside the run itself
            print(f"{stop.name}: stopped {', '.join(_servers(local.kserve.stop())) or 'nothing'}")
            code = stop.exit_code
        stops.cleaning_up = True  # a signal now does not cut the cluster's stop short
        return code


def _report(
    args: argparse.Namespace, result: Any, params: PipelineParams, out: Path, local: Any
) -> int:
    """Say how the run ended (run.json has the details); the exit code. run.json names the
    endpoint as the cluster does, and the loopback address its name routes to here."""
    wf = result.workflow_name
    endpoint = result.outputs.get("endpoint") or None
    routes = local.kserve.routes()
    result.extra.update(
        metrics={k: float(v) for k, v in result.outputs.items() if k in ("accuracy", "macro_f1")},
        metadata=params.metadata_store,
        endpoint=endpoint,
        local_endpoint=endpoint and routes.get(urlsplit(endpoint).hostname or ""),
    )
    result.write(out / "run.json")
    if stopped := result.extra.get("interrupted"):
        what = [*stopped["stopped"], *_servers(local.kserve.stop())]
        print(
            f"run: interrupted by {stopped['signal']} ({wf}); stopped "
            f"{', '.join(what) or 'nothing'}; details in {out / 'run.json'}",
            file=sys.stderr,
        )
        return Interrupted(signal.Signals[stopped["signal"]]).exit_code
    print(f"run: {result.status} ({wf}); details in {out / 'run.json'}")
    if result.status != "Succeeded":
        if args.quiet:  # the lines the run would have printed for the failures
            print(result.message)
            for task, step in result.steps.items():
                if step["status"] in ("Failed", "Errored"):
                    print(f"task {task!r}: {step.get('message', '')}; log: {step['log']}")
        return 1
    metrics = result.extra["metrics"]
    print(f"test accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}")
    print(f"gate: {result.outputs['gate_decision']} ({result.outputs['gate_reason']})")
    print(f"data: {result.outputs['data_checks']}")
    print(f"report: {result.outputs['report']}")
    return 0


def _servers(count: int) -> list[str]:
    return [f"{count} model server{'s' if count > 1 else ''}"] if count else []


def _serve(args: argparse.Namespace) -> int:
    from textcnn.serving import build_app, load_model, serve_app

    model_dir = args.model_dir or _model_of_run(args.run_dir / "run.json")
    app = build_app(load_model(model_dir, args.model_name))  # before saying it serves
    print(f"serving {model_dir} as {args.model_name} on http://{args.host}:{args.port}")
    serve_app(app, args.port, host=args.host)
    return 0


def _model_of_run(run_json: Path) -> str:
    """The model folder a local run's run.json names (its output `model_uri`);
    WorkflowError where it names none."""
    instead = "run the pipeline first (make run), or give --model_dir"
    if not run_json.is_file():
        raise WorkflowError(f"{run_json} not found: {instead}")
    try:
        run = json.loads(run_json.read_text())
    except json.JSONDecodeError as e:
        raise WorkflowError(f"{run_json} is not a run's JSON ({e}); {instead}") from None
    if not isinstance(run, dict) or not isinstance(run.get("outputs", {}), dict):
        raise WorkflowError(f"{run_json} is not a run's JSON; {instead}")
    # The workflow's output: there also when the run reused the model (textcnn.cache).
    if not isinstance(model := run.get("outputs", {}).get("model_uri"), str):
        status = run.get("status", "status unknown")
        raise WorkflowError(f"{run_json}: the run ({status}) has no model; {instead}")
    return model


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workflows", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("compile", help="write the WorkflowTemplate and CronWorkflow YAML")
    p.add_argument(
        "--output_dir",
        type=Path,
        default=None,
        help=f"default: {DEFAULT_MANIFESTS}, or {LIGHTWEIGHT_MANIFESTS} with --lightweight",
    )
    pipeline.add_render_arguments(p)
    PipelineParams.add_arguments(p)
    p.set_defaults(func=_compile)

    p = sub.add_parser(
        "requirements", help="the pinned packages each step needs, derived from its imports"
    )
    p.add_argument("--write", action="store_true", help=f"write them to {STEP_REQUIREMENTS}")
    p.set_defaults(func=_requirements)

    p = sub.add_parser("images", help="print the image references REGISTRY/NAME:TAG, checked")
    p.add_argument(
        "--registry", required=True, help="e.g. ghcr.io/you or europe-docker.pkg.dev/p/r"
    )
    p.add_argument("--tag", required=True)
    p.set_defaults(func=_images)

    p = sub.add_parser(
        "bundle",
        help="write the manifests for `kubectl apply -k`, the templates naming REGISTRY's images",
    )
    p.add_argument("--registry", required=True)
    p.add_argument("--tag", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--output_dir", type=Path, required=True)
    p.set_defaults(func=_bundle)

    p = sub.add_parser(
        "run",
        help="run the compiled DAG on this machine",
        description="Run the compiled DAG on this machine. " + RULE + " SIGINT and "
        "SIGTERM stop every step and server, run the exit handler and write run.json "
        "(exit 130 or 143).",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--output_dir", type=Path, help="run folder (logs, run.json)")
    where.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="go on with the failed or interrupted run in DIR, as `argo retry` does: its "
        "succeeded tasks stand, but for the gate and what follows it (what serves may have "
        "changed since) and a TFJob or claim that a task run again needs (they ended with "
        "the earlier run's local cluster); the others run again, with the same options "
        "and the template this code compiles from them",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="empty an output folder that holds an earlier run, then run there",
    )
    p.add_argument(
        "--artifact_root",
        type=_artifact_root,
        default=None,
        help="artifact store: a folder or gs://BUCKET/PREFIX (default: OUTPUT_DIR/artifacts)",
    )
    p.add_argument("--max_parallel", type=int, default=2, help="tasks run at once")
    p.add_argument(
        "--quiet",
        action="store_true",
        help="print only the final lines (outcome, metrics, gate), not each task and its progress",
    )
    p.add_argument(
        "--cold_start",
        action="store_true",
        help="start each step's process only when its task is ready, as a pod starts "
        "(default: a step of ours starts ahead and imports while the steps before it run)",
    )
    p.add_argument(
        "--keep_serving",
        action="store_true",
        help="keep the deployed model's local server running after the run",
    )
    pipeline.add_render_arguments(p)
    PipelineParams.add_arguments(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("serve", help="serve a trained model with the local KServe server")
    p.add_argument(
        "--model_dir",
        type=Path,
        default=None,
        help="the SavedModel base folder (holding 1/saved_model.pb)",
    )
    p.add_argument(
        "--run_dir",
        type=Path,
        default=Path("runs/latest"),
        help="without --model_dir: serve the model of this local run",
    )
    p.add_argument("--model_name", default="textcnn")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--host", default="127.0.0.1")
    p.set_defaults(func=_serve)

    p = sub.add_parser("lint", help="strict offline checks of every manifest (default: manifests/)")
    lint.add_arguments(p)
    p.set_defaults(func=lint.main)

    p = sub.add_parser("submit", help="submit a run to an Argo Server (Hera WorkflowsService)")
    submit.add_submit_arguments(p)
    p.set_defaults(func=submit.run_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ParamsError, WorkflowError, InputError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the machine, not the code: say which file and what to do
        hint = {
            errno.ENOSPC: "free some disk space",
            errno.EROFS: "choose a writable folder",
            errno.EACCES: "check its permissions",
        }.get(e.errno or 0, "check the path")
        print(f"error: {e.filename or 'a file'}: {e.strerror or e}; {hint}", file=sys.stderr)
        return 2
