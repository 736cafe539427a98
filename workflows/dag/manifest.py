"""The text of a resource template's manifest: Argo substitutes `{{...}}` into it as text.

Integer fields that take a parameter are left unquoted (`replicas: {{...}}`), so that
the substituted manifest parses as a number, as the CRD schema requires.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml


def manifest_yaml(doc: Mapping[str, Any], integer_fields: Iterable[str]) -> str:
    text = yaml.safe_dump(dict(doc), sort_keys=False, width=1_000_000)
    fields = "|".join(integer_fields)
    return re.sub(
        rf"^(\s*(?:{fields}): )'(\{{\{{[^{{}}']+\}}\}})'$", r"\1\2", text, flags=re.MULTILINE
    )
