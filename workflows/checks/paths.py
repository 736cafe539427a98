"""Reading possibly malformed documents, naming a place in one: `spec.templates[train]`
(a list item by its name where it has one), and quoting a value of one, as every check
prints its problems."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jsonschema import ValidationError

# Characters of a document value or name that a problem line shows: enough to know it by.
MAX_SHOWN = 120


def shorten(text: str) -> str:
    """`text`, cut to MAX_SHOWN characters with an ellipsis and its full length."""
    if len(text) <= MAX_SHOWN:
        return text
    return f"{text[:MAX_SHOWN]}... ({len(text):,} characters)"


def shown(value: Any) -> str:
    """A document value as a problem line quotes it: its repr, shortened."""
    return shorten(repr(value))


def schema_message(error: ValidationError) -> str:
    """A JSON-Schema error's message, the value it quotes shortened (jsonschema quotes it
    whole: `[...] is not of type 'string'`)."""
    return error.message.replace(repr(error.instance), shown(error.instance))


def as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_maps(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def names_of(value: Any) -> list[str]:
    return [str(v.get("name")) for v in as_maps(value)]


def label_of(doc: Mapping[str, Any]) -> str:
    meta = as_map(doc.get("metadata"))
    name = meta.get("name") or meta.get("generateName") or "?"
    return shorten(f"{doc.get('kind', '?')}/{name}")


def child(path: str, key: Any, value: Any = None) -> str:
    """`path` extended by a key or by a list position, shown as the item's name if any."""
    if isinstance(key, int):
        name = value.get("name") if isinstance(value, Mapping) else None
        return f"{path}[{shorten(name) if isinstance(name, str) and name else key}]"
    return f"{path}.{shorten(str(key))}" if path else shorten(str(key))


def pretty(doc: Any, parts: Sequence[Any]) -> str:
    path, node = "", doc
    for part in parts:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
        else:
            node = node.get(part) if isinstance(node, Mapping) else None
        path = child(path, part, node)
    return path or "(root)"


def slash_parts(doc: Any, text: str) -> list[Any]:
    """The parts of a `a/b/0/c` path as argo_schema prints it, walking the document
    so that keys holding a '/' (annotations) stay whole."""
    if text == "(root)":
        return []
    segments, node, i = text.split("/"), doc, 0
    parts: list[Any] = []
    while i < len(segments):
        if isinstance(node, list) and segments[i].isdigit():
            index = int(segments[i])
            parts.append(index)
            node = node[index] if index < len(node) else None
            i += 1
            continue
        keys = ["/".join(segments[i:j]) for j in range(len(segments), i, -1)]
        key = next((k for k in keys if isinstance(node, Mapping) and k in node), None)
        if key is None:
            return parts + segments[i:]
        parts.append(key)
        node, i = node[key], i + key.count("/") + 1
    return parts
