"""Step caching by content-addressed artifacts: same inputs and code, same key, same place.

A cacheable stage of the DAG writes its artifacts under `cache/<key>/<artifact>` in the
artifact repository, and last its entry, `cache/<key>/entry`, which lists every file it
wrote with its size. validate-params, the DAG's first task, works out every stage's key
from the plan the DAG compiled into its arguments (`workflows/dag/caching.py`):

    key(stage) = sha256(stage, code version, its command line with the options' values,
                        the digests of the data files it reads, the keys of its inputs)

and the stage runs (its tasks' `when`) only if no whole entry is there. The artifacts of
a run with `--cache false` go where they always went, `<workflow>/<artifact>`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from textcnn import storage
from textcnn.entry import Entry
from textcnn.errors import InputError

PREFIX = "cache"
ENTRY = "entry"
RUN = "run"  # a stage's decision when it has no entry: anything else is `cached from <run>`
LINEAGE = "cache"  # the output of keys and hits that log-training-metadata records from
PACKAGE_ROOT = Path(__file__).resolve().parent


def code_version() -> str:
    """The package version and a digest of its sources (paths and bytes), as installed."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_ROOT.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".json"):
            digest.update(path.relative_to(PACKAGE_ROOT).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    try:
        version = importlib.metadata.version("textcnn")
    except importlib.metadata.PackageNotFoundError:
        version = "0"
    return f"{version}+{digest.hexdigest()[:16]}"


def key_parameter(artifact: str) -> str:
    """validate-params' output (and a template's input) holding a cached artifact's key."""
    return f"key-{artifact}"


def entry_parameter(stage: str) -> str:
    """validate-params' output holding the key of `stage`'s entry."""
    return f"{ENTRY}-{stage}"


def stage_keys(
    plan: Mapping[str, Mapping[str, Any]], values: Mapping[str, str], digests: Mapping[str, str]
) -> dict[str, str]:
    """Every stage's key. The plan lists stages producers first; each has `args` (its
    command line, options as `${name}`) and `inputs` (the stages whose artifacts it reads).
    `digests` are of the data files the options name, by option."""
    code = code_version()
    keys: dict[str, str] = {}
    for stage, spec in plan.items():
        templates = [string.Template(a) for a in spec["args"]]
        options = sorted({o for t in templates for o in t.get_identifiers()})
        material = {
            "stage": stage,
            "code": code,
            "args": [t.substitute(values) for t in templates],
            "data": {o: digests[o] for o in options if o in digests},
            "inputs": {s: keys[s] for s in spec["inputs"]},
        }
        text = json.dumps(material, sort_keys=True)
        keys[stage] = hashlib.sha256(text.encode()).hexdigest()[:32]
    return keys


def read_entry(root: str, key: str) -> Entry | None:
    """The entry at `<root>/cache/<key>`, if it is there and every file it lists is too,
    at its size and (on GCS) MD5: an upload cut short, or a file another attempt left,
    makes it no entry, and the stage runs again."""
    folder = storage.join(root, f"{PREFIX}/{key}")
    try:
        entry = Entry.from_json(storage.read_text(storage.join(folder, ENTRY)))
    except FileNotFoundError:
        return None
    if entry is None:
        return None  # not an entry this code wrote: computed again, and rewritten
    found = storage.listing(folder)
    for name, (size, md5) in entry.files.items():
        # A GCS object's stored MD5 must be the one the step wrote (an object left by an
        # earlier attempt, or another run's, is no part of this entry); a local store's
        # uploads are renames, whole or absent, and its files are not read again.
        if name not in found or found[name][0] != size or found[name][1] not in (None, md5):
            return None
    return entry


def decide(
    plan: Mapping[str, Mapping[str, Any]],
    values: Mapping[str, str],
    digests: Mapping[str, str],
    *,
    use_cache: bool,
    artifact_root: str,
    run_name: str,
) -> dict[str, str]:
    """validate-params' cache outputs: for each stage, `<stage>` (`run`, or `cached from
    <workflow>`) and `entry-<stage>` (its entry's key); for each artifact, `key-<artifact>`;
    and `cache`, the JSON that log-training-metadata records lineage from."""
    if use_cache and not artifact_root:
        raise InputError("--artifact_root: empty; give the artifact repository root")
    keys = stage_keys(plan, values, digests)
    out: dict[str, str] = {}
    hits: dict[str, str] = {}
    artifacts: dict[str, str] = {}
    for stage, spec in plan.items():
        where = f"{PREFIX}/{keys[stage]}" if use_cache else run_name
        entry = read_entry(artifact_root, keys[stage]) if use_cache else None
        if entry is not None:
            hits[stage] = entry.run
        out[stage] = RUN if entry is None else f"cached from {entry.run}"
        out[entry_parameter(stage)] = (
            f"{where}/{ENTRY}" if use_cache else f"{where}/entries/{stage}"
        )
        for artifact in spec["outputs"]:
            artifacts[artifact] = f"{where}/{artifact}"
    out.update({key_parameter(a): k for a, k in artifacts.items()})
    out[LINEAGE] = json.dumps({"keys": artifacts, "hits": hits}, sort_keys=True)
    return out
