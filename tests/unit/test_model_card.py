"""The model card's HTML escapes every value; its Markdown keeps them as written."""

from __future__ import annotations

from services.governance.gates import GateResult
from services.governance.model_card import ModelCard, to_html, to_markdown

CARD = ModelCard(
    title="m <b>v2</b> → @champion",
    facts=(("Reason", "</td><script>alert(1)</script>"), ("Requested by", "omar")),
    metrics=(("eval_f1", 0.8, 0.85), ("eval_new", None, 0.5)),
    gates=(GateResult("eval_f1 improves", True, "0.8 → 0.85"), GateResult("drift", False, "red")),
)


def test_html_escapes_untrusted_text() -> None:
    page = to_html(CARD)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "m &lt;b&gt;v2&lt;/b&gt;" in page
    assert "<td>eval_new</td><td>—</td><td>0.5</td>" in page
    assert "class=fail" in page and "class=pass" in page


def test_markdown_lists_facts_metrics_and_gates() -> None:
    text = to_markdown(CARD)
    assert text.startswith("# Model card: m <b>v2</b> → @champion\n")
    assert "| eval_f1 | 0.8 | 0.85 |" in text
    assert "- FAIL drift: red" in text and "- PASS eval_f1 improves: 0.8 → 0.85" in text
