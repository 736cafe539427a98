"""The lint's YAML loader: what yaml.safe_load gives, up to each bound and not one past it.
(tests/test_lint.py has the hostile files themselves, as the lint reports them.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from workflows.checks import yaml_bounded
from workflows.checks.yaml_bounded import MAX_ALIAS_CHARS, MAX_ALIAS_NODES, MAX_DEPTH

BLOCK = 1_000  # nodes of the aliased block: a list of 999 numbers


def _aliases(count: int) -> str:
    """A block, then `count` aliases of it: they stand for count * BLOCK nodes."""
    block = "[" + ", ".join(str(i) for i in range(BLOCK - 1)) + "]"
    return f"block: &b {block}\nuses:\n" + "".join("- *b\n" for _ in range(count))


def test_aliases_may_stand_for_the_bound_and_no_more() -> None:
    at_bound = _aliases(MAX_ALIAS_NODES // BLOCK)
    assert yaml_bounded.load(at_bound) == yaml.safe_load(at_bound)
    with pytest.raises(yaml.YAMLError, match=f"more than {MAX_ALIAS_NODES:,} nodes") as error:
        yaml_bounded.load(_aliases(MAX_ALIAS_NODES // BLOCK + 1))
    # The alias past the bound: after the block's line and `uses:`.
    assert isinstance(error.value, yaml.MarkedYAMLError) and error.value.problem_mark
    assert error.value.problem_mark.line + 1 == 2 + MAX_ALIAS_NODES // BLOCK + 1


def test_an_alias_counts_as_every_node_it_stands_for_through_other_aliases() -> None:
    # `*ten` stands for 1 + 10 * BLOCK nodes; the ten aliases in it added 10 * BLOCK.
    ten = "ten: &t [" + ", ".join(["*b"] * 10) + "]\n"
    fits = (MAX_ALIAS_NODES - 10 * BLOCK) // (1 + 10 * BLOCK)
    text = _aliases(0) + ten + "more:\n" + "".join("- *t\n" for _ in range(fits))
    assert yaml_bounded.load(text) == yaml.safe_load(text)
    with pytest.raises(yaml.YAMLError, match=f"more than {MAX_ALIAS_NODES:,} nodes"):
        yaml_bounded.load(text + "- *t\n")


def test_aliases_of_a_long_string_count_its_characters() -> None:
    # A few nodes, but each alias stands for 100,000 characters that the checks would
    # copy into messages: 1 MB of file became 100 GB of one message before.
    long = 100_000
    text = f"s: &s {'x' * long}\nuses:\n" + "- *s\n" * (MAX_ALIAS_CHARS // long)
    assert yaml_bounded.load(text) == yaml.safe_load(text)
    with pytest.raises(yaml.YAMLError, match=f"more than {MAX_ALIAS_CHARS:,} characters"):
        yaml_bounded.load(text + "- *s\n")


def test_each_document_has_its_own_alias_budget() -> None:
    most = _aliases(MAX_ALIAS_NODES // BLOCK)
    assert yaml_bounded.load_all(f"{most}---\n{most}") == [yaml.safe_load(most)] * 2


def test_nesting_to_the_bound_and_no_deeper() -> None:
    assert yaml_bounded.load("[" * MAX_DEPTH + "]" * MAX_DEPTH) == yaml.safe_load(
        "[" * MAX_DEPTH + "]" * MAX_DEPTH
    )
    with pytest.raises(yaml.YAMLError, match=f"nested deeper than {MAX_DEPTH} levels"):
        yaml_bounded.load("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))


@pytest.mark.parametrize("text", ["a: &a [1, *a]\n", "a: &a {b: *a}\n"])
def test_a_recursive_alias_is_refused(text: str) -> None:
    # safe_load builds a list that holds itself; every check walking it would loop.
    with pytest.raises(yaml.YAMLError, match="a recursive alias"):
        yaml_bounded.load(text)


def test_the_size_bound_counts_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A small bound: the real one takes seconds to parse at its limit.
    monkeypatch.setattr(yaml_bounded, "MAX_FILE_BYTES", 16)
    path = tmp_path / "small.yaml"
    path.write_text("k: [é, é, é]\n")  # 13 characters, 16 bytes
    assert yaml_bounded.read_all(path) == [{"k": ["é"] * 3}]
    path.write_text("k: [é, é, é, é]\n")  # 16 characters, 20 bytes
    with pytest.raises(yaml.YAMLError, match="larger than 16 bytes"):
        yaml_bounded.read_all(path)
