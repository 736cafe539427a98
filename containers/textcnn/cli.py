"""Pod entrypoint: `python -m textcnn STEP --option value ...`.

Each step is a plain function with typed keyword arguments; its command line is derived
from its signature, so a step is callable from Python, from a pod and from the local
runner in exactly the same way. A step returns a small dict of output parameters; with
`--outputs DIR` each value is written to `DIR/<key>`, where Argo's `valueFrom.path`
(and the local runner) pick it up.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import inspect
import json
import os
import sys
import time
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textcnn.errors import NOT_RETRIED, FinalError, InputError
from textcnn.params import ParamsError, parse_bool, parse_int_list

# Step name -> "module:function": textcnn/steps/<name>.py's run(), imported lazily so
# light steps start fast.
STEPS: dict[str, str] = {
    name: f"textcnn.steps.{name.replace('-', '_')}:run"
    for name in (
        "validate-params",
        "dataset-metadata",
        "prepare-data",
        "check-data",
        "embeddings",
        "model-metadata",
        "train",
        "stage-data",
        "train-distributed",
        "wait-tfjob",
        "wait-trainjob",
        "collect-model",
        "fit-ngrams",
        "export",
        "evaluate",
        "log-training-metadata",
        "gate",
        "deploy-wait",
        "canary-check",
        "record-status",
    )
}


# Libraries that cost a step's start-up a second or hundreds of MiB.
HEAVY_IMPORTS = ("tensorflow", "sklearn", "gensim", "pandas", "ml_metadata", "kserve")


def load_step(name: str) -> Callable[..., dict[str, Any] | None]:
    module, _, func = STEPS[name].partition(":")
    return getattr(importlib.import_module(module), func)


def step_parameters(name: str) -> list[tuple[str, bool]]:
    """The parameters of step NAME's function as (name, required), in order, read from its
    source without importing it: steps import TensorFlow, compiling the DAG need not."""
    module, _, func = STEPS[name].partition(":")
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, module
    tree = ast.parse(Path(spec.origin).read_text())
    (fn,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == func]
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults))
    pairs = [
        *zip(positional, [*defaults, *a.defaults], strict=True),
        *zip(a.kwonlyargs, a.kw_defaults, strict=True),
    ]
    return [(arg.arg, default is None) for arg, default in pairs]


def _converter(annotation: Any) -> Callable[[str], Any]:
    """A step option's parser: the pipeline options' own converters (textcnn.params)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        inner = _converter(args[0])
        return lambda s: None if s == "" else inner(s)
    if annotation is bool:
        return parse_bool
    if annotation == list[int]:
        return parse_int_list
    if annotation in (int, float, str):
        return annotation
    if annotation is Path:
        return Path
    raise TypeError(f"unsupported step parameter type: {annotation!r}")


def build_parser(name: str, func: Callable[..., Any]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m textcnn {name}", description=func.__doc__, allow_abbrev=False
    )
    hints = typing.get_type_hints(func)
    for pname, param in inspect.signature(func).parameters.items():
        if param.kind is param.VAR_KEYWORD:
            continue
        required = param.default is inspect.Parameter.empty
        parser.add_argument(
            f"--{pname}",
            dest=pname,
            type=_converter(hints[pname]),
            required=required,
            default=None if required else param.default,
        )
    parser.add_argument(
        "--outputs", type=Path, default=None, help="folder receiving one file per output parameter"
    )
    # A cacheable stage's entry (textcnn.cache), written once the step has succeeded.
    parser.add_argument("--cache_entry", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache_run", default="", help=argparse.SUPPRESS)
    return parser


def _free_options(extra: list[str], parser: argparse.ArgumentParser) -> dict[str, str]:
    """`--key=value` / `--key value` pairs for a step that takes **options (as strings)."""
    out: dict[str, str] = {}
    it = iter(extra)
    for token in it:
        if not token.startswith("--"):
            parser.error(f"unexpected argument {token!r}")
        key, eq, value = token[2:].partition("=")
        out[key] = value if eq else next(it, "")
    return out


def write_outputs(outputs: dict[str, Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for key, value in outputs.items():
        text = value if isinstance(value, str) else json.dumps(value)
        (folder / key).write_text(text)


def warm(name: str) -> int:
    """`python -m textcnn --warm STEP`: a step process started ahead of its inputs (the
    local runner's warm start). It imports the step's module, and with it what the step
    imports at start, then reads its command line (`STEP --option value ...`, one JSON
    list) from stdin and runs it as `main` would have; end of input: not needed, exit."""
    began = time.perf_counter()
    load_step(name)
    print(
        f"warm start: pid {os.getpid()}, {STEPS[name].partition(':')[0]} imported in "
        f"{time.perf_counter() - began:.1f} s; waiting for the command line",
        file=sys.stderr,
        flush=True,
    )
    line = sys.stdin.readline()
    if not line:
        return 0
    argv = json.loads(line)
    if not argv or argv[0] != name:
        print(f"error: warm start of {name}: got the command line {argv!r}", file=sys.stderr)
        return 2
    # As a cold start has it: nothing on stdin, its own command line.
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    sys.argv[1:] = argv
    return main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "--warm" and argv[1] in STEPS:
        return warm(argv[1])
    if not argv or argv[0] not in STEPS:
        print(f"usage: python -m textcnn {{{','.join(STEPS)}}} [options]", file=sys.stderr)
        return 2
    name = argv[0]
    func = load_step(name)
    parser = build_parser(name, func)
    if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(func).parameters.values()):
        known, extra = parser.parse_known_args(argv[1:])
        args = {**vars(known), **_free_options(extra, parser)}
    else:
        args = vars(parser.parse_args(argv[1:]))
    outputs_dir = args.pop("outputs")
    entry, entry_run = args.pop("cache_entry"), args.pop("cache_run")
    start, began, cpu = time.time(), time.perf_counter(), time.process_time()
    try:
        outputs = func(**args) or {}
        if outputs_dir is not None:
            write_outputs(outputs, outputs_dir)
        if entry is not None:
            from textcnn.entry import write_entry

            write_entry(entry, entry_run)
    except (InputError, ParamsError, FinalError) as e:
        print(f"error: {name}: {e}", file=sys.stderr)
        return NOT_RETRIED
    except OSError as e:  # a full disk, a read-only folder: retried, as on another node
        where = f" {e.filename}" if e.filename else ""
        print(f"error: {name}:{where}: {e.strerror or e}", file=sys.stderr)
        return 1
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    # The step's own work, without interpreter start and imports (start/end: Unix times;
    # cpu: CPU seconds, steadier than wall time on a busy machine), and the heavy libraries
    # it loaded, which its pod pays for at start-up. Benchmarks split a run's wall time into
    # step compute and orchestration overhead with it.
    loaded = ",".join(m for m in HEAVY_IMPORTS if m in sys.modules) or "-"
    print(
        f"timing step={name} seconds={seconds:.3f} start={start:.3f} "
        f"end={start + seconds:.3f} cpu={cpu:.3f} imports={loaded}",
        file=sys.stderr,
    )
    return 0
