"""fit-ngrams: the wide n-gram branch (textcnn.ngrams), fitted once on the prepared texts.

It reads only prepare-data's output and the model spec, so it runs beside training (one
pod, or the TFJob whose replicas then train only the CNN) instead of inside every
trainer; `export` assembles both branches into the one serving model. With the plain
`cnn` architecture it writes an empty branch.
"""

from __future__ import annotations

import json
from typing import Any

from textcnn import cpus, ngrams, progress, storage
from textcnn.model import CHAR_NGRAM_ORDER, ModelConfig
from textcnn.prepared import iter_texts, load_labels

INFO_FILE = "ngrams.json"


def run(prepared_dir: str, model_spec_dir: str, output_dir: str) -> dict[str, Any]:
    """Fit each n-gram family on the training split, choosing C on the validation split;
    write OUTPUT_DIR/ngrams.npz (the fitted families) and ngrams.json (what was chosen)."""
    cpus.limit_tensorflow()
    config = ModelConfig.load(model_spec_dir)
    families = (
        ((ngrams.WORD, config.ngram_order), (ngrams.CHAR, CHAR_NGRAM_ORDER))
        if config.ngrams
        else ()
    )
    y_train = load_labels(prepared_dir, "train", config)
    y_val = load_labels(prepared_dir, "val", config)
    fits = []
    for done, (family, order) in enumerate(families):
        progress.report(done, len(families), f"fitting the {family} {order}-gram model")
        # The texts are streamed from their files: never held whole.
        vocabulary = ngrams.build_vocabulary(
            iter_texts(prepared_dir, "train", len(y_train)), order, config.ngram_features, family
        )
        layer = ngrams.NgramLinear(vocabulary, order, config.num_classes, family)
        fits.append(
            ngrams.fit(
                layer,
                iter_texts(prepared_dir, "train", len(y_train)),
                y_train,
                iter_texts(prepared_dir, "val", len(y_val)),
                y_val,
            )
        )
    info = {
        "families": {
            f.layer.family: {
                "features": f.layer.size,
                "order": f.layer.order,
                "C": f.c,
                "val_accuracy": float((f.val_probabilities.argmax(axis=1) == y_val).mean()),
            }
            for f in fits
        }
    }
    with storage.atomic_dir(output_dir) as out:
        if fits:
            ngrams.save_branch(out, fits)
        (out / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    progress.report(len(families), len(families), f"{len(fits)} n-gram models fitted")
    print(json.dumps(info))
    return {"features": sum(f.layer.size for f in fits)}
