"""YAML from files the lint is asked to check, read within bounds: a file too large, a
document nested too deep, or one whose aliases expand to too many nodes (a "billion
laughs") is refused with a `yaml.YAMLError` that names the line, before anything walks it.

PyYAML composes an alias as the node it names, once; it is the checks, walking the
document as a tree, that expand it. So the composer counts, for each alias, the nodes it
stands for, and the characters of their scalars, and refuses a document once either
passes its bound (MAX_ALIAS_NODES, MAX_ALIAS_CHARS): a long string aliased often is as
large as many nodes once the checks build messages from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# The API server takes at most 3 MiB in one request; a file is a few objects at most.
MAX_FILE_BYTES = 8 * 2**20
# Over twice the deepest manifest known here (Argo's CRDs nest 38 levels), and far
# below Python's recursion limit, which composing and checking a document both use.
MAX_DEPTH = 100
# Real manifests alias a few small blocks (shared env, resources); a bomb, millions.
MAX_ALIAS_NODES = 100_000
# What aliases may stand for, in characters: no more than a file the lint reads.
MAX_ALIAS_CHARS = MAX_FILE_BYTES


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses deep nesting and large alias expansion while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0  # nodes of this document, as a tree: aliases expanded
        self._chars = 0  # the characters of its scalars, likewise
        self._from_aliases = (0, 0)  # the part of both that aliases stand for
        # The tree size of each composed node: nodes, characters.
        self._sizes: dict[yaml.Node, tuple[int, int]] = {}

    def compose_document(self) -> yaml.Node | None:
        self._nodes, self._chars, self._from_aliases, self._sizes = 0, 0, (0, 0), {}
        return super().compose_document()

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        alias, mark = self.check_event(yaml.AliasEvent), self.peek_event().start_mark
        if self._depth >= MAX_DEPTH:
            raise _refused(f"nested deeper than {MAX_DEPTH} levels", mark)
        before = self._nodes, self._chars
        self._depth += 1
        node = super().compose_node(parent, index)
        self._depth -= 1
        assert node is not None  # None only when there is no event left
        if not alias:
            self._nodes += 1
            if isinstance(node, yaml.ScalarNode):
                self._chars += len(node.value)
            self._sizes[node] = (self._nodes - before[0], self._chars - before[1])
            return node
        if node not in self._sizes:  # an alias inside its own anchor
            raise _refused("a recursive alias", mark)
        nodes, chars = self._sizes[node]
        self._nodes += nodes
        self._chars += chars
        self._from_aliases = (self._from_aliases[0] + nodes, self._from_aliases[1] + chars)
        if self._from_aliases[0] > MAX_ALIAS_NODES:
            raise _refused(f"aliases expand to more than {MAX_ALIAS_NODES:,} nodes", mark)
        if self._from_aliases[1] > MAX_ALIAS_CHARS:
            raise _refused(f"aliases expand to more than {MAX_ALIAS_CHARS:,} characters", mark)
        return node


def _refused(problem: str, mark: yaml.Mark) -> yaml.YAMLError:
    return yaml.composer.ComposerError(None, None, problem, mark)


def load_all(text: str) -> list[Any]:
    """The documents of `text`, as yaml.safe_load_all gives them, within the bounds."""
    return list(yaml.load_all(text, Loader=_BoundedLoader))


def load(text: str) -> Any:
    """The one document of `text`, as yaml.safe_load gives it, within the bounds."""
    return yaml.load(text, Loader=_BoundedLoader)


def read_all(path: Path) -> list[Any]:
    """The documents of the file `path`; refused unparsed past MAX_FILE_BYTES."""
    with path.open("rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)  # no more: the file may be huge, or growing
    if len(data) > MAX_FILE_BYTES:
        raise yaml.YAMLError(f"the file is larger than {MAX_FILE_BYTES:,} bytes")
    return load_all(data.decode())
