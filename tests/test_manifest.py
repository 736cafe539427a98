"""No option value can become structure: the rules of textcnn.params, and the quoting of
workflows/dag/manifest.py where values are substituted into a resource manifest as text.

Each hostile value, for each text option, is either refused naming the option, or
substituted into every resource manifest as Argo substitutes (text, then YAML) and found
there unchanged, as one scalar, in a document of the same shape as with a harmless value.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from textcnn.params import ParamsError, PipelineParams
from workflows.dag import pipeline
from workflows.dag.manifest import manifest_yaml

HOSTILE = {
    "newline and YAML": "x\n    command: [sh, -c, 'touch /tmp/owned']",
    "single quote": "it's",
    "double quote": 'say "hi"',
    "hash": "a #b",
    "command substitution": "$(whoami)",
    "backticks": "`id`",
    "argo variable": "{{workflow.name}}",
    "parent folder": "../../etc/passwd",
    "NUL": "a\x00b",
    "10 kB": "x" * 10_000,
}
TEXT_OPTIONS = [n for n, f in PipelineParams.model_fields.items() if f.annotation is str]
REF = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")


def resource_manifests(params: PipelineParams) -> dict[str, str]:
    """Each resource template's manifest, with every `{{...}}` substituted as Argo does."""
    values = {f"workflow.parameters.{k}": v for k, v in params.to_strings().items()}
    values |= {"workflow.name": "wf-x1b2c", "workflow.namespace": "textcnn"}
    out = {}
    for template in pipeline.render()[0]["spec"]["templates"]:
        if "resource" in template:
            text = template["resource"]["manifest"]
            out[template["name"]] = REF.sub(lambda m: values.get(m.group(1), "in-1"), text)
    return out


def shape(node: Any) -> Any:
    """The structure of a document: its keys and list lengths, not its scalars."""
    if isinstance(node, dict):
        return {k: shape(v) for k, v in node.items()}
    if isinstance(node, list):
        return [shape(v) for v in node]
    return type(node).__name__


def scalars(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in scalars(v)]
    if isinstance(node, list):
        return [s for v in node for s in scalars(v)]
    return [node]


BASELINE = {
    name: yaml.safe_load(text) for name, text in resource_manifests(PipelineParams()).items()
}


@pytest.mark.parametrize("option", TEXT_OPTIONS)
@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_value_is_refused_or_arrives_unchanged(option: str, case: str) -> None:
    value = HOSTILE[case]
    try:
        params = PipelineParams.parse({option: value})
    except ParamsError as e:
        assert f"--{option}:" in str(e)
        return
    assert getattr(params, option) == value
    for name, text in resource_manifests(params).items():
        doc = yaml.safe_load(text)
        assert shape(doc) == shape(BASELINE[name]), (name, case)
        default = PipelineParams().to_strings()[option]
        if default and f"{{{{workflow.parameters.{option}}}}}" in _template_text(name):
            assert any(value in str(s) for s in scalars(doc)), (name, case)


def _template_text(name: str) -> str:
    (template,) = [t for t in pipeline.render()[0]["spec"]["templates"] if t["name"] == name]
    return str(template["resource"]["manifest"])


@pytest.mark.parametrize("case", ["newline and YAML", "NUL", "argo variable", "10 kB"])
def test_the_worst_values_are_refused_for_every_text_option(case: str) -> None:
    for option in TEXT_OPTIONS:
        with pytest.raises(ParamsError, match=re.escape(f"--{option}:")):
            PipelineParams.parse({option: HOSTILE[case]})


def test_every_reference_in_a_manifest_is_quoted_except_integer_fields() -> None:
    doc = {"a": "{{x}}", "b": ["--opt={{y}}", "plain"], "replicas": "{{n}}", "c": "no ref"}
    text = manifest_yaml(doc, ["replicas"])
    assert text.splitlines() == [
        "a: '{{x}}'",
        "b:",
        "- '--opt={{y}}'",
        "- plain",
        "replicas: {{n}}",
        "c: no ref",
    ]
    # A value with YAML in it stays one scalar once substituted into the quotes.
    injected = text.replace("{{y}}", "v: 1 # x").replace("{{n}}", "3")
    assert yaml.safe_load(injected)["b"] == ["--opt=v: 1 # x", "plain"]
