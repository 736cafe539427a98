"""The Dockerfiles, read as text (no Docker engine here): pinned bases and packages, a
non-root numeric user, no secrets, and build inputs that exist and reach the context."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTAINERS = ROOT / "containers"
DOCKERFILES = {p.name: p for p in sorted(CONTAINERS.glob("Dockerfile.*"))}
SECRET_NAME = re.compile(r"(^|_)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)(_|$)", re.I)
PINNED_PACKAGE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9.+!-]+$"
)

Instruction = tuple[str, str]


def instructions(path: Path) -> list[Instruction]:
    """(INSTRUCTION, arguments) pairs: continuation lines joined, comment lines dropped
    (Docker drops them inside continuations too)."""
    out: list[Instruction] = []
    pending = ""
    for line in path.read_text().splitlines():
        if line.strip().startswith("#") or (not line.strip() and not pending):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, args = pending.strip().partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, f"{path.name}: dangling line continuation"
    return out


def args_of(path: Path, keyword: str) -> list[str]:
    return [a for k, a in instructions(path) if k == keyword]


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore glob (Go filepath.Match plus `**`) as a regex."""
    out = ""
    for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
        out += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token) or re.escape(
            token
        )
    return re.compile(out)


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves `path` out: the last pattern matching the path or
    one of its parent folders decides (`!` patterns put it back)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    result = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _glob_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(p) for p in prefixes):
            result = not negated
    return result


def test_the_three_images_exist() -> None:
    assert set(DOCKERFILES) == {"Dockerfile.steps", "Dockerfile.gpu", "Dockerfile.serving"}


def test_the_dockerignore_matcher_follows_docker_rules() -> None:
    patterns = [".venv", "**/__pycache__", "*.egg-info", "data/*", "!data/keep.csv"]
    assert ignored(".venv/lib/x.py", patterns)
    assert ignored("containers/textcnn/__pycache__/a.pyc", patterns)
    assert ignored("__pycache__/a.pyc", patterns)
    assert ignored("textcnn_argo.egg-info/PKG-INFO", patterns)
    assert ignored("data/drop.csv", patterns) and not ignored("data/keep.csv", patterns)
    assert not ignored("containers/textcnn/cli.py", patterns)
    assert not ignored("x.venv", patterns)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_every_base_image_is_pinned_to_a_version_or_digest(name: str) -> None:
    stages: set[str] = set()
    for args in args_of(DOCKERFILES[name], "FROM"):
        words = [w for w in args.split() if not w.startswith("--platform")]
        image = words[0]
        if len(words) == 3 and words[1].upper() == "AS":
            stages.add(words[2])
        if image in stages:
            continue
        tag = (
            image.rpartition("@")[0].rpartition(":")[2]
            if "@" in image
            else (image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else "")
        )
        assert tag != "latest", f"{name}: {image}"
        assert re.search(r"@sha256:[0-9a-f]{64}$", image) or re.search(r"\d+\.\d+\.\d+", tag), (
            f"{name}: {image} is not pinned to an exact version (x.y.z) or a digest"
        )


@pytest.mark.parametrize("name", DOCKERFILES)
def test_python_bases_match_the_tested_interpreter(name: str) -> None:
    minor = f"{sys.version_info.major}.{sys.version_info.minor}."
    for args in args_of(DOCKERFILES[name], "FROM"):
        image = args.split()[0]
        if image.startswith("python:"):
            assert image.removeprefix("python:").startswith(minor), image


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_image_runs_as_a_numeric_non_root_user(name: str) -> None:
    users = args_of(DOCKERFILES[name], "USER")
    assert users, f"{name}: no USER (would run as root)"
    user = users[-1]
    assert re.fullmatch(r"\d+(:\d+)?", user), f"{name}: USER {user} is not a numeric uid"
    assert int(user.split(":")[0]) != 0 and user.split(":")[-1] != "0"
    # The user is set after every RUN, so nothing reverts it.
    keywords = [k for k, _ in instructions(DOCKERFILES[name])]
    assert "RUN" not in keywords[len(keywords) - keywords[::-1].index("USER") :]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_no_secrets_in_env_or_arg(name: str) -> None:
    for keyword in ("ENV", "ARG"):
        for args in args_of(DOCKERFILES[name], keyword):
            tokens = shlex.split(args)
            names = [t.split("=", 1)[0] for t in tokens if "=" in t] or tokens[:1]
            for var in names:
                assert not SECRET_NAME.search(var), f"{name}: {keyword} {var} looks like a secret"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_pip_installs_only_pinned_packages(name: str) -> None:
    installs = 0
    for args in args_of(DOCKERFILES[name], "RUN"):
        for command in re.split(r"&&|\|\||;", args):
            tokens = shlex.split(command)
            if "pip" not in tokens or "install" not in tokens:
                continue
            installs += 1
            words = iter(tokens[tokens.index("install") + 1 :])
            for word in words:
                if word in ("-r", "--requirement", "-c", "--constraint"):
                    assert next(words).endswith("requirements.txt"), f"{name}: {command}"
                elif not word.startswith("-"):
                    assert PINNED_PACKAGE.match(word), f"{name}: {word} is not pinned (==)"
    assert installs, f"{name}: installs nothing"


def test_requirements_are_pinned_exactly() -> None:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    packages = [ln.split("#")[0].strip() for ln in lines if ln.split("#")[0].strip()]
    assert packages and all(PINNED_PACKAGE.match(p) for p in packages), [
        p for p in packages if not PINNED_PACKAGE.match(p)
    ]


def test_the_gpu_image_installs_the_tested_tensorflow_with_cuda() -> None:
    pins = dict(
        ln.split("==") for ln in (ROOT / "requirements.txt").read_text().split() if "==" in ln
    )
    run = " ".join(args_of(DOCKERFILES["Dockerfile.gpu"], "RUN"))
    assert f"tensorflow[and-cuda]=={pins['tensorflow']}" in run


@pytest.mark.parametrize("name", DOCKERFILES)
def test_build_inputs_exist_and_reach_the_build_context(name: str) -> None:
    assert not args_of(DOCKERFILES[name], "ADD"), f"{name}: use COPY (no ADD, no URLs)"
    patterns = dockerignore_patterns()
    copies = args_of(DOCKERFILES[name], "COPY")
    assert any("containers/textcnn" in c for c in copies), f"{name}: the package is not copied"
    for args in copies:
        sources = [w for w in shlex.split(args) if not w.startswith("--")][:-1]
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"{name}: COPY {source}: no such file in the repository"
            files = [path] if path.is_file() else [p for p in path.rglob("*.py")]
            for file in files:
                rel = file.relative_to(ROOT).as_posix()
                assert not ignored(rel, patterns), f"{name}: .dockerignore drops {rel}"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_output_is_unbuffered(name: str) -> None:
    env = " ".join(args_of(DOCKERFILES[name], "ENV"))
    assert re.search(r"\bPYTHONUNBUFFERED=1\b", env), f"{name}: logs would arrive late"


@pytest.mark.parametrize("name", ["Dockerfile.steps", "Dockerfile.gpu"])
def test_step_images_leave_the_command_to_argo(name: str) -> None:
    assert not args_of(DOCKERFILES[name], "ENTRYPOINT")
    assert not args_of(DOCKERFILES[name], "CMD")


def test_the_serving_image_runs_the_kserve_server_on_8080() -> None:
    path = DOCKERFILES["Dockerfile.serving"]
    (entrypoint,) = args_of(path, "ENTRYPOINT")
    assert json.loads(entrypoint) == ["python", "-m", "textcnn.serving"]
    assert (CONTAINERS / "textcnn" / "serving.py").is_file()
    assert args_of(path, "EXPOSE") == ["8080"]
    (cmd,) = args_of(path, "CMD")
    defaults = json.loads(cmd)
    assert "--port=8080" in defaults and "--host=0.0.0.0" in defaults
