"""The packages each step needs, derived from what it imports and pinned as requirements.txt
pins them: what a pod of a stock image must install before it runs the step.

A step's imports are read from source (no import runs): `textcnn.cli`, the step module
and every first-party module they reach, imports inside functions included (the steps
defer heavy ones). Each third-party module is traced to the installed distribution that
ships it; its pin comes from requirements.txt. `make compile` writes the table to
containers/textcnn/step_requirements.json (it ships in the wheel); tests/test_packaging.py
fails when it is stale, when a step imports a package its list lacks, or when a pin
differs from requirements.txt.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import importlib.util
import json
import re
import sys
import warnings
from pathlib import Path

from textcnn.cli import STEPS

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "textcnn-argo"  # this project's own distribution: the wheel
PACKAGE = ROOT / "containers" / "textcnn"
REQUIREMENTS = ROOT / "requirements.txt"
TABLE = PACKAGE / "step_requirements.json"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(\S+)$")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    """Canonical distribution name -> `name==version`, from requirements.txt."""
    out = {}
    for line in REQUIREMENTS.read_text().splitlines():
        if (m := _PIN.match(line.split("#")[0].strip())) is not None:
            out[_canonical(m.group(1))] = f"{m.group(1)}=={m.group(3)}"
    return out


def _source(module: str) -> Path | None:
    """The file of a first-party module (textcnn.*), or None."""
    parts = module.split(".")
    if parts[0] != "textcnn":
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(path: Path) -> set[str]:
    """Every module an `import` anywhere in the file names (functions included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def third_party_imports(*roots: str) -> set[str]:
    """The third-party modules the first-party modules `roots` reach import."""
    seen, todo, outside = set(), list(roots), set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _source(module)
        if path is None:
            if not module.startswith("textcnn") and module.split(".")[0] not in _STDLIB:
                outside.add(module)
            continue
        todo += sorted(_imports(path))
    return outside


_STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}


@functools.cache
def _top_level() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def distribution_of(module: str) -> str | None:
    """The distribution shipping `module`: the one owning its top-level package or, for a
    namespace package such as `google` that several share, the one holding its file."""
    owners = _top_level().get(module.split(".")[0], [])
    if len(owners) <= 1:
        return _canonical(owners[0]) if owners else None
    with warnings.catch_warnings():  # finding google.api_core imports it, and it warns
        warnings.simplefilter("ignore")
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):  # `from X import name` where name is no module
            spec = importlib.util.find_spec(module.rpartition(".")[0])
    if spec is None or not spec.origin:
        return None
    origin = Path(spec.origin).resolve()
    for name in owners:
        dist = importlib.metadata.distribution(name)
        site = Path(str(dist.locate_file(""))).resolve()
        if origin.is_relative_to(site):
            relative = origin.relative_to(site).as_posix()
            if any(str(f) == relative for f in dist.files or ()):
                return _canonical(name)
    return None


def step_requirements() -> dict[str, list[str]]:
    """Step -> the pinned distributions its imports need, sorted."""
    pinned = pins()
    table = {}
    for step, target in STEPS.items():
        module = target.partition(":")[0]
        needed = {distribution_of(m) for m in third_party_imports("textcnn.cli", module)}
        missing = sorted(d for d in needed if d is not None and d not in pinned)
        if missing:
            raise ValueError(f"step {step}: {', '.join(missing)} not pinned in requirements.txt")
        table[step] = sorted(pinned[d] for d in needed if d is not None)
    return table


def table() -> dict[str, object]:
    """What textcnn.bootstrap reads: each step's pinned packages, and every pin of
    requirements.txt as pip constraints for their dependencies."""
    return {"steps": step_requirements(), "constraints": sorted(pins().values())}


def write_table(path: Path = TABLE) -> Path:
    path.write_text(json.dumps(table(), indent=1, sort_keys=True) + "\n")
    return path
