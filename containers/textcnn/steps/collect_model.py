"""collect-model: publish the CNN that the TFJob's chief wrote on the shared volume as the
`cnn` artifact, the very output of the single-pod train step, so export, evaluation and
deployment do not care which branch trained."""

from __future__ import annotations

from pathlib import Path

from textcnn import storage
from textcnn.errors import InputError
from textcnn.model import CNN_FILES


def run(source_dir: str, cnn_dir: str) -> None:
    """Publish SOURCE_DIR/cnn, as the TFJob's chief wrote it, to CNN_DIR."""
    cnn = Path(source_dir) / "cnn"
    missing = [name for name in CNN_FILES if not (cnn / name).is_file()]
    if missing:
        raise InputError(
            f"{cnn}: missing {', '.join(missing)}; the TFJob's chief writes them when "
            "training succeeds: read its log"
        )
    storage.upload_dir(cnn, cnn_dir)
