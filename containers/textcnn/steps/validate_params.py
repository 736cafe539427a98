"""validate-params: the DAG's first step, so Argo UI submissions meet the CLI's rules."""

from __future__ import annotations

import glob
import json
from pathlib import Path

from textcnn import cache, storage
from textcnn.errors import InputError
from textcnn.params import PipelineParams

# Local paths that steps read (must exist) or write; each must be a regular file.
FILES = {
    "train_data_path": True,
    "test_data_path": True,
    "w2v_model_path": True,
    "json_tokenizer_path": False,
}


def check_files(params: PipelineParams) -> None:
    """InputError naming each path option that is no regular file (a FIFO, a folder, a
    device: reading one would hang or fail deep inside a later step)."""
    problems = [
        f"--{option} {path}: {problem}; give a regular file"
        for option, must_exist in FILES.items()
        if (path := getattr(params, option))
        and (problem := storage.file_problem(path, must_exist=must_exist))
    ]
    if problems:
        raise InputError("invalid options:\n  " + "\n  ".join(problems))


def companions(path: str) -> list[str]:
    """The files gensim's `save()` writes beside a model, `NAME.<array>.npy`: part of it."""
    if storage.is_gcs(path):
        return storage.list_prefix(f"{path}.")
    return sorted(str(p) for p in Path(path).parent.glob(f"{glob.escape(Path(path).name)}.*"))


def data_digests(params: PipelineParams) -> dict[str, str]:
    """The digest of every data file an option names (with its companions), by option:
    computed here, once."""
    return {
        option: " ".join(storage.fingerprint(p) for p in (path, *companions(path)))
        for option, must_exist in FILES.items()
        if must_exist and (path := getattr(params, option))
    }


def run(
    cache_plan: str = "", artifact_root: str = "", run_name: str = "", **options: str
) -> dict[str, str]:
    """Validate every pipeline option, and the local files they name; fail naming each bad
    one. The output `params` (the validated options as JSON) is what ML Metadata records
    as hyperparameters. With `cache_plan` (the DAG's, see textcnn.cache), also which
    stages run and where every stage's artifacts go."""
    params = PipelineParams.parse(options)
    check_files(params)
    dumped = params.model_dump_json()
    print(dumped)
    outputs = {"params": dumped}
    if cache_plan:
        plan = json.loads(cache_plan)
        digests = data_digests(params)
        outputs |= cache.decide(
            plan,
            params.to_strings(),
            digests,
            use_cache=params.cache,
            artifact_root=artifact_root,
            run_name=run_name,
        )
        for option, digest in digests.items():
            print(f"--{option}: {digest}")
        for stage in plan:
            print(f"{stage}: {outputs[stage]}")
    return outputs
