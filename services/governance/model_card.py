"""The model card written when a promotion is executed: the approval's evidence pack.

Markdown and HTML, logged on the promoted version's run as ``model_card/model_card.md`` and
``model_card/model_card.html``: the metrics against the previous holder, the drift status of the
window before the version was registered, the gates, who requested and approved, and why. All
text from MLflow and people is escaped in the HTML.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from services.core.records import Run
from services.core.wiring import Wiring
from services.experiments.charts import APP_THEME, PALETTE
from services.governance.gates import GateResult
from services.governance.requests import PromotionRequest
from services.monitoring.runs import drift_status, monitoring_runs

CARD_DIR = "model_card"
MARKDOWN_PATH = f"{CARD_DIR}/model_card.md"
HTML_PATH = f"{CARD_DIR}/model_card.html"
DRIFT_BATCHES = 5
"""How many batches before the version's registration the card summarises."""


@dataclass(frozen=True, slots=True)
class ModelCard:
    title: str
    facts: tuple[tuple[str, str], ...]
    """(label, value) rows: requester, approvers, reason, rollback plan, drift."""
    metrics: tuple[tuple[str, float | None, float | None], ...]
    """(metric, previous holder's value, this version's value)."""
    gates: tuple[GateResult, ...]


def build_card(
    services: Wiring, request: PromotionRequest, gates: Sequence[GateResult]
) -> ModelCard:
    """Gather the card's content from MLflow and the request."""
    registry = services.registry
    version = registry.get_model_version(request.model, request.version)
    new_run = registry.get_run(version.run_id) if version.run_id else None
    old_run: Run | None = None
    if request.expected_holder is not None:
        old = registry.get_model_version(request.model, request.expected_holder)
        old_run = registry.get_run(old.run_id) if old.run_id else None
    names = sorted(
        {k for run in (new_run, old_run) if run for k in run.metrics if k.startswith("eval_")}
    )
    metrics = tuple(
        (
            name,
            old_run.metrics.get(name) if old_run else None,
            new_run.metrics.get(name) if new_run else None,
        )
        for name in names
    )
    before = [
        b
        for b in monitoring_runs(registry, request.model)
        if version.created_at is None or b.window_end <= version.created_at
    ][-DRIFT_BATCHES:]
    status = drift_status(before, services.governance.drift)
    target = f"@{request.target}" if request.target_kind == "alias" else request.target
    holder = f"v{request.expected_holder}" if request.expected_holder is not None else "nothing"
    return ModelCard(
        title=f"{request.model} v{request.version} → {target}",
        facts=(
            ("Replaces", holder),
            ("Requested by", request.requested_by),
            ("Approved by", ", ".join(request.approvers) or "(executed directly)"),
            ("Reason", request.reason),
            ("Rollback plan", request.rollback_plan or "(none given)"),
            ("Request", request.request_id),
            (
                "Drift before registration",
                f"{status.level}: {status.reason}"
                + (
                    " (shares " + ", ".join(f"{b.drift_share:.2f}" for b in before) + ")"
                    if before
                    else ""
                ),
            ),
            *(
                (("Gate override", f"{request.override_by}: {request.override_reason}"),)
                if request.override_by
                else ()
            ),
        ),
        metrics=metrics,
        gates=tuple(gates),
    )


def to_markdown(card: ModelCard) -> str:
    """The card as Markdown (untrusted text is written as it is: a Markdown file is data)."""
    lines = [f"# Model card: {card.title}", ""]
    lines += [f"- **{label}:** {value}" for label, value in card.facts]
    lines += ["", "## Metrics against the previous holder", "", "| Metric | Before | After |"]
    lines += ["|---|---|---|"]
    lines += [f"| {name} | {_number(old)} | {_number(new)} |" for name, old, new in card.metrics]
    lines += ["", "## Gates", ""]
    lines += [f"- {'PASS' if g.passed else 'FAIL'} {g.name}: {g.detail}" for g in card.gates]
    return "\n".join(lines) + "\n"


def to_html(card: ModelCard) -> str:
    """The card as a self-contained HTML page; every value is escaped."""
    e = html.escape
    facts = "".join(
        f"<tr><th>{e(label)}</th><td>{e(value)}</td></tr>" for label, value in card.facts
    )
    metrics = "".join(
        f"<tr><td>{e(name)}</td><td>{_number(old)}</td><td>{_number(new)}</td></tr>"
        for name, old, new in card.metrics
    )
    gates = "".join(
        f"<li class={'pass' if g.passed else 'fail'}>{'✔' if g.passed else '✘'} "
        f"<b>{e(g.name)}</b>: {e(g.detail)}</li>"
        for g in card.gates
    )
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>Model card: {e(card.title)}</title><style>"
        f"body{{font-family:sans-serif;color:{APP_THEME.get('textColor', 'inherit')};"
        "max-width:60rem;margin:2rem auto}"
        "th{text-align:left;padding-right:1rem}td,th{padding:.2rem .5rem}"
        f".pass{{color:{PALETTE[2]}}}.fail{{color:{PALETTE[3]}}}</style></head><body>"
        f"<h1>Model card: {e(card.title)}</h1><table>{facts}</table>"
        "<h2>Metrics against the previous holder</h2><table><tr><th>Metric</th><th>Before</th>"
        f"<th>After</th></tr>{metrics}</table><h2>Gates</h2><ul>{gates}</ul></body></html>"
    )


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"
