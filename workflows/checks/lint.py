"""`python -m workflows lint [PATHS]`: strict offline checks of every manifest, as the
cluster would make them. Supports what Argo Workflows 3.7 and 4.0 accept.

Each YAML document is dispatched on its apiVersion and kind:

- argoproj.io: the strict Argo v4.0.5 and v3.7.18 schemas and full CRDs (argo_schema.py),
  then Argo's validator's own rules (argo_semantics.py), embedded resource manifests and
  podSpecPatches included;
- serving.kserve.io InferenceService, kubeflow.org TFJob: CRD schema, unknown keys and the
  admission webhooks' rules (admission.py, over crd.py);
- trainer.kubeflow.org TrainJob and ClusterTrainingRuntime: the same for Kubeflow Trainer
  v2 (trainer.py); a TrainJob's runtime patches are checked against its runtime when that
  is among the files linted;
- kustomize.config.k8s.io Kustomization: its `resources` must exist;
- anything else: the strict Kubernetes schemas (kubernetes.py).

Every pod spec (workflow step pods, TFJob replicas, a runtime's nodes, InferenceService predictors,
Deployments, StatefulSets, ...) must meet the Pod Security Standard "restricted"
(pod_security.py).

Files are read within bounds (yaml_bounded.py): a file too large, nested too deep or
expanding its aliases too far is one problem, not a hang.

Each problem is one line: `file:index Kind/name: field.path: message [rule]`; a long value
or name in it is cut short (paths.shorten).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from workflows.checks import admission, argo_schema, pod_security, trainer, yaml_bounded
from workflows.checks.argo_semantics import WORKFLOW_KINDS, Context, workflow_problems
from workflows.checks.kubernetes import kubernetes_problems, kustomization_problems
from workflows.checks.paths import as_map, label_of

DEFAULT_PATH = Path("manifests")


def _problems(doc: Any, ctx: Context) -> list[str]:
    """`path: message` lines for one document."""
    if not isinstance(doc, Mapping):
        return [f"(root): a document must be a mapping, not {type(doc).__name__}"]
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return ["(root): apiVersion and kind are required strings"]
    group = api_version.rpartition("/")[0]
    if group == "argoproj.io" and kind in argo_schema.KINDS:
        return argo_schema.problems(doc) + (
            workflow_problems(doc, ctx) if kind in WORKFLOW_KINDS else []
        )
    if group == "serving.kserve.io" and kind == "InferenceService":
        return admission.validate_inference_service(doc) + pod_security.document_problems(doc)
    if group == "kubeflow.org" and kind == "TFJob":
        return admission.validate_tfjob(doc) + pod_security.document_problems(doc)
    if group == trainer.GROUP and kind == trainer.TRAINJOB_KIND:
        runtimes = {name: d for (k, name), d in ctx.templates.items() if k == trainer.RUNTIME_KIND}
        return trainer.validate_trainjob(doc, runtimes or None) + pod_security.document_problems(
            doc
        )
    if group == trainer.GROUP and kind == trainer.RUNTIME_KIND:
        return trainer.validate_training_runtime(doc) + pod_security.document_problems(doc)
    if group == "kustomize.config.k8s.io" and kind == "Kustomization":
        return kustomization_problems(doc, ctx.folder)
    return kubernetes_problems(doc) + pod_security.document_problems(doc)


# ---- files ---------------------------------------------------------------------------------


def _files(paths: Sequence[Path]) -> tuple[list[Path], list[str]]:
    files, problems = [], []
    for path in paths:
        if path.is_dir():
            files += sorted(
                p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
            )
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    return files, problems


# What one document may name of another: a workflow a template, a TrainJob its runtime.
REFERENCED_KINDS = ("WorkflowTemplate", "ClusterWorkflowTemplate", trainer.RUNTIME_KIND)


def _template_index(docs: Sequence[Any]) -> dict[tuple[str, str], Mapping[str, Any]]:
    return {
        (d["kind"], str(as_map(d.get("metadata")).get("name"))): d
        for d in docs
        if isinstance(d, Mapping) and d.get("kind") in REFERENCED_KINDS
    }


def lint_documents(
    docs: Sequence[Any],
    source: str | Path,
    templates: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
) -> list[str]:
    """Problems of the documents of one file, as `source:index kind/name: path: message`
    lines. `templates` are the (Cluster)WorkflowTemplates a workflowTemplateRef or
    templateRef may name, and the ClusterTrainingRuntimes a TrainJob may, by (kind,
    name); default: those among `docs`."""
    folder = Path(source).parent if isinstance(source, Path) else None
    ctx = Context(
        templates if templates is not None else _template_index(docs),
        folder,
        lambda d: _problems(d, ctx),
    )
    out = []
    for index, doc in enumerate(docs):
        if doc is None:
            continue  # an empty document between two `---`
        label = label_of(doc) if isinstance(doc, Mapping) else "?"
        out += [f"{source}:{index} {label}: {line}" for line in _checked(doc, ctx)]
    return out


def _checked(doc: Any, ctx: Context) -> list[str]:
    """`_problems`, or why there are none: the loader bounds a document's depth, but
    not that of manifests embedded in it (a resource template's, within its manifest's)."""
    try:
        return _problems(doc, ctx)
    except RecursionError:
        return ["(root): nested too deeply to check (resource manifests within manifests)"]


def _load(files: Sequence[Path]) -> tuple[dict[Path, list[Any]], list[str]]:
    loaded, problems = {}, []
    for path in files:
        try:
            loaded[path] = yaml_bounded.read_all(path)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            problems.append(f"{path}: cannot read YAML: {' '.join(str(e).split())}")
    return loaded, problems


def lint_paths(paths: Sequence[Path]) -> list[str]:
    """Problems of every document in `paths` (files, or folders searched for *.yaml and
    *.yml). WorkflowTemplates in any of them may be referenced from any other."""
    files, problems = _files(paths)
    loaded, unreadable = _load(files)
    templates = _template_index([d for docs in loaded.values() for d in docs])
    problems += unreadable
    for path, docs in loaded.items():
        problems += lint_documents(docs, path, templates)
    return problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        default=[DEFAULT_PATH],
        help=f"YAML files or folders (default: {DEFAULT_PATH}/)",
    )


def main(args: argparse.Namespace) -> int:
    """Print one line per problem and a summary (stderr); 1 when there are problems."""
    problems = lint_paths(args.paths)
    for line in problems:
        print(line)
    files, _ = _files(args.paths)
    where = f"{len(files)} file(s) under {', '.join(str(p) for p in args.paths)}"
    if problems:
        print(f"lint: {len(problems)} problem(s) in {where}", file=sys.stderr)
        return 1
    print(f"lint: {where}: no problems", file=sys.stderr)
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m workflows.checks.lint", description=__doc__)
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
