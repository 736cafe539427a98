"""`python -m workflows compile | run`: the thin command-line layer over the one DAG.

Every command takes the pipeline options of the original CLI (see textcnn.params) and
validates them before anything runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from textcnn.params import ParamsError, PipelineParams

from workflows import pipeline, submit

DEFAULT_MANIFESTS = Path("manifests/workflows")


def _compile(args: argparse.Namespace) -> int:
    params = PipelineParams.from_namespace(args)
    for path in pipeline.write_manifests(args.output_dir, params):
        print(path)
    return 0


def _run(args: argparse.Namespace) -> int:
    from workflows.runner import run_workflow

    out = args.output_dir.resolve()
    store = f"sqlite:{out / 'metadata.sqlite'}"
    # The cluster default (an MLMD gRPC service) means nothing on a laptop: use SQLite.
    overrides = {} if args.metadata_store else {"metadata_store": store}
    params = PipelineParams.from_namespace(args, **overrides)
    artifact_root = args.artifact_root or str(out / "artifacts")
    template = pipeline.render(params)[0]
    result = run_workflow(
        template, params.to_argo(), out, artifact_root=artifact_root,
        env={"ARTIFACT_ROOT": artifact_root}, max_parallel=args.max_parallel,
    )
    wf = result.workflow_name
    result.extra.update(
        metrics={k: float(v) for k, v in result.outputs.items() if k in ("accuracy", "macro_f1")},
        metadata=params.metadata_store,
    )
    result.write(out / "run.json")
    print(f"run: {result.status} ({wf}); details in {out / 'run.json'}")
    if result.status != "Succeeded":
        return 1
    metrics = result.extra["metrics"]
    print(f"test accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workflows", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("compile", help="write the WorkflowTemplate and CronWorkflow YAML")
    p.add_argument("--output_dir", type=Path, default=DEFAULT_MANIFESTS)
    PipelineParams.add_arguments(p)
    p.set_defaults(func=_compile)

    p = sub.add_parser("run", help="run the compiled DAG on this machine")
    p.add_argument("--output_dir", type=Path, required=True, help="run folder (logs, run.json)")
    p.add_argument("--artifact_root", default=None,
                   help="artifact store: a folder or gs://BUCKET/PREFIX "
                   "(default: OUTPUT_DIR/artifacts)")
    p.add_argument("--max_parallel", type=int, default=2, help="tasks run at once")
    PipelineParams.add_arguments(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("submit", help="submit a run to an Argo Server (Hera WorkflowsService)")
    submit.add_submit_arguments(p)
    p.set_defaults(func=submit.run_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ParamsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

