"""`python -m workflows compile | run | serve | lint | submit`: the thin command-line layer
over the one DAG.

Every command takes the pipeline options of the original CLI (see textcnn.params) and
validates them before anything runs; `submit` adds the client's login options.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from textcnn.params import ParamsError, PipelineParams
from workflows import submit
from workflows.checks import lint
from workflows.dag import pipeline
from workflows.errors import WorkflowError

DEFAULT_MANIFESTS = Path("manifests/workflows")


def _compile(args: argparse.Namespace) -> int:
    params = PipelineParams.from_namespace(args)
    rendering = pipeline.Rendering.from_namespace(args)
    for path in pipeline.write_manifests(args.output_dir, params, rendering):
        print(path)
    return 0


def _run(args: argparse.Namespace) -> int:
    from workflows.local.execute import run_workflow
    from workflows.local.stand_ins import STAND_INS, LocalKServe

    out = args.output_dir.resolve()
    store = f"sqlite:{out / 'metadata.sqlite'}"
    # The cluster default (an MLMD gRPC service) means nothing on a laptop: use SQLite.
    overrides = {} if args.metadata_store else {"metadata_store": store}
    params = PipelineParams.from_namespace(args, **overrides)
    artifact_root = args.artifact_root or str(out / "artifacts")
    template = pipeline.render(params, pipeline.Rendering.from_namespace(args))[0]
    kserve = LocalKServe()
    try:
        result = run_workflow(
            template,
            params.to_strings(),
            out,
            artifact_root=artifact_root,
            env={"ARTIFACT_ROOT": artifact_root},
            max_parallel=args.max_parallel,
            stand_ins={**STAND_INS, **kserve.stand_ins()},
        )
        wf = result.workflow_name
        result.extra.update(
            metrics={
                k: float(v) for k, v in result.outputs.items() if k in ("accuracy", "macro_f1")
            },
            metadata=params.metadata_store,
            endpoint=result.outputs.get("endpoint") or None,
        )
        result.write(out / "run.json")
        print(f"run: {result.status} ({wf}); details in {out / 'run.json'}")
        if result.status != "Succeeded":
            return 1
        metrics = result.extra["metrics"]
        print(f"test accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}")
        if args.keep_serving and kserve.servers:
            print(
                f"serving {params.isvc_name} at {result.extra['endpoint']} "
                "(V1 and V2; Ctrl-C stops it)"
            )
            kserve.serve_forever()
        return 0
    finally:
        kserve.stop()


def _serve(args: argparse.Namespace) -> int:
    from textcnn.serving import serve

    model_dir = args.model_dir
    if model_dir is None:
        run_json = args.run_dir / "run.json"
        if not run_json.is_file():
            print(
                f"error: {run_json} not found: run the pipeline first (make run) or give "
                "--model_dir",
                file=sys.stderr,
            )
            return 2
        model_dir = json.loads(run_json.read_text())["artifacts"]["model"]
    print(f"serving {model_dir} as {args.model_name} on http://{args.host}:{args.port}")
    serve(str(model_dir), args.model_name, args.port, host=args.host)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workflows", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("compile", help="write the WorkflowTemplate and CronWorkflow YAML")
    p.add_argument("--output_dir", type=Path, default=DEFAULT_MANIFESTS)
    pipeline.add_render_arguments(p)
    PipelineParams.add_arguments(p)
    p.set_defaults(func=_compile)

    p = sub.add_parser("run", help="run the compiled DAG on this machine")
    p.add_argument("--output_dir", type=Path, required=True, help="run folder (logs, run.json)")
    p.add_argument(
        "--artifact_root",
        default=None,
        help="artifact store: a folder or gs://BUCKET/PREFIX (default: OUTPUT_DIR/artifacts)",
    )
    p.add_argument("--max_parallel", type=int, default=2, help="tasks run at once")
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
    except (ParamsError, WorkflowError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
