"""The tokenisation rules: one table, in the two regex dialects that apply it.

Kim (2014)-style cleaning: lower case, letters/digits and a few punctuation marks kept,
punctuation and English clitics split off, then whitespace splitting.
`textcnn.text.standardize` applies the table with TF ops inside the served model, and
`textcnn.tokens.standardize` with Python's `re`. Each rule carries both spellings because
RE2 (TF) and `re` differ: `re` has no `\\p{..}` classes, and RE2's `\\b` is ASCII-only.
Its own module, with no TF and no tokenizer, so both forms import it and neither imports
the other at start-up.
"""

from __future__ import annotations

import re
from typing import NamedTuple

PAD, OOV = "", "[UNK]"


class Rule(NamedTuple):
    re2: str  # as TF's regex_replace (RE2) reads it
    python: str  # the same pattern for Python's `re`
    replacement: str
    flags: re.RegexFlag = re.NOFLAG


RULES: tuple[Rule, ...] = (
    Rule(r"<[^>]*>", r"<[^>]*>", " "),  # stray HTML such as <br />
    # Python's \w is a Unicode letter or number, or "_".
    Rule(r"[^\p{L}\p{N}(),!?'`]", r"[^\w(),!?'`]|_", " "),
    Rule(r"('s|'ve|n't|'re|'d|'ll)\b", r"('s|'ve|n't|'re|'d|'ll)\b", r" \1", re.ASCII),
    Rule(r"([,!?()])", r"([,!?()])", r" \1 "),
    Rule(r"\s+", r"\s+", " "),
)
