"""The packages each step needs (workflows.packaging): the committed table is current, its
pins are requirements.txt's, and what a step really imports is on its list."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys

import pytest

from workflows import packaging

WRITTEN = json.loads(packaging.TABLE.read_text())
TABLE = WRITTEN["steps"]
# Steps whose imports are checked by running them (the others load TensorFlow, which the
# stock image brings; one of them, train, is checked too).
RUN = [
    "validate-params",
    "dataset-metadata",
    "prepare-data",
    "embeddings",
    "model-metadata",
    "wait-tfjob",
    "log-training-metadata",
    "deploy-wait",
    "record-status",
    "train",
]


def test_the_table_is_current() -> None:
    assert packaging.table() == WRITTEN, "stale: run `make compile`"


def test_every_pin_is_requirements_txt_s() -> None:
    pinned = set(packaging.pins().values())
    assert pinned and all(req in pinned for reqs in TABLE.values() for req in reqs)
    assert set(WRITTEN["constraints"]) == pinned
    assert set(TABLE) == set(packaging.STEPS)


def _closure(names: list[str]) -> tuple[set[str], set[str]]:
    """The distributions a pip install of `names` brings (them and what they need), and
    the optional ones (extras) they name."""
    todo, seen, extras = list(names), set(), set()
    while todo:
        name = packaging._canonical(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:  # a marker keeps it out here
            continue
        for req in requires:
            dist = packaging._canonical(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0])
            if "extra ==" in req:
                extras.add(dist)
            else:
                todo.append(dist)
    return seen, extras


def _installs(requirements: list[str]) -> tuple[set[str], set[str]]:
    """What installing `requirements` brings, and the optional packages (with what they
    need) that libraries import when they find them."""
    installs, extras = _closure([r.split("==")[0] for r in requirements])
    optional, _ = _closure(sorted(extras - installs))
    return installs, optional


def _loaded(*modules: str) -> set[str]:
    code = (
        f"import sys, {', '.join(modules)}\n"
        "print(' '.join({m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def _modules_of(requirements: list[str]) -> list[str]:
    """The top-level modules the distributions of `requirements` install."""
    names = {packaging._canonical(r.split("==")[0]) for r in requirements}
    return sorted(
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if module.isidentifier() and names & {packaging._canonical(d) for d in dists}
    )


@pytest.mark.parametrize("step", RUN)
def test_what_a_step_imports_is_on_its_list(step: str) -> None:
    module = packaging.STEPS[step].partition(":")[0]
    # What the interpreter loads by itself (site, this checkout's editable install) is not
    # the step's, nor what the listed libraries load when they find it installed here and
    # do without elsewhere (Keras imports scikit-learn for its wrappers if it can).
    loaded = _loaded("textcnn.cli", module) - _loaded("sys", *_modules_of(TABLE[step]))
    installs, optional = _installs(TABLE[step])
    own = {packaging._canonical(packaging.PROJECT)}
    needed = {d for m in loaded if (d := packaging.distribution_of(m))}
    missing = sorted(needed - installs - optional - own)
    assert missing == [], f"{step} imports packages its list lacks"
