"""The text of a resource template's manifest: Argo substitutes `{{...}}` into it as text,
then parses it as YAML.

So a value can never become structure, every string that holds a `{{...}}` reference is
written single-quoted: a substituted value then stays inside that one scalar, since the
options allow no quote and no line break (textcnn.params). Integer fields that take a
parameter are left unquoted (`replicas: {{...}}`), so that the substituted manifest parses
as a number, as the CRD schema requires; they only take integer options.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml


class _QuotingDumper(yaml.SafeDumper):
    """Single-quotes every string that holds a reference."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "'" if "{{" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_QuotingDumper.add_representer(str, _str)


def manifest_yaml(doc: Mapping[str, Any], integer_fields: Iterable[str]) -> str:
    text = yaml.dump(dict(doc), Dumper=_QuotingDumper, sort_keys=False, width=1_000_000)
    fields = "|".join(integer_fields)
    return re.sub(
        rf"^(\s*(?:{fields}): )'(\{{\{{[^{{}}']+\}}\}})'$", r"\1\2", text, flags=re.MULTILINE
    )
