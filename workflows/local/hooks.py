"""What a local run asks of the project that runs it, passed in by that project's CLI:
how an image's command runs on this machine, which processes may start ahead of their
task, and what a log line says of progress or failure. The defaults know no project: a
command runs as written, nothing starts ahead, and logs say nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# (image, command, environment, run folder) -> the command and environment that run it
# here, once the image's stand-in is ready (`pull`).
ImageHook = Callable[[str, list[str], dict[str, str], Path], tuple[list[str], dict[str, str]]]
# A container's command -> (the command of a process that can start ahead of the task and
# reads the rest of its arguments as one JSON line on stdin, those arguments), or None.
WarmHook = Callable[[list[str]], tuple[list[str], list[str]] | None]


def _as_written(
    image: str, command: list[str], env: dict[str, str], run_dir: Path
) -> tuple[list[str], dict[str, str]]:
    return command, env


def _no_pull(image: str, run_dir: Path) -> None:
    return None


def _never(command: list[str]) -> None:
    return None


def _nothing(line: str) -> None:
    return None


@dataclass(frozen=True)
class Hooks:
    image: ImageHook = _as_written
    pull: Callable[[str, Path], None] = _no_pull  # make the image's stand-in ready, once
    warm: WarmHook = _never
    progress: Callable[[str], str | None] = _nothing  # a log line's "N/M note", if any
    error: Callable[[str], str | None] = _nothing  # a log line that says why it failed
