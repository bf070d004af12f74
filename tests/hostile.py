"""Hostile text: one list of payloads, one list of sources, and a world full of them.

Every payload would become a link or an image pointing at ``evil.example`` if Flightdeck
rendered it as Markdown. :func:`build_hostile_world` puts them in every place untrusted text
comes from (MLflow names, tags, descriptions and signatures; requests, decisions and jobs in the
application store; a person's name; and, in the tests, the URL), each behind its own marker
word, so a test can both find where a source is shown and check it is shown as text.

:func:`rendered_references` is the oracle for AppTest, which sees the Markdown source rather
than the page: it lists every link and image target that Streamlit's Markdown (CommonMark,
GitHub's autolinks applied to the decoded text, raw HTML) would make from a string. The browser
test checks the real DOM instead.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from markdown_it import MarkdownIt
from mlflow import MlflowClient

from services.core.gateway import TrackingGateway
from services.core.settings import load_settings
from services.core.store import Store
from services.core.wiring import Wiring
from services.governance import promotion, requests
from services.governance.auth import Identity
from services.governance.config import load_governance
from services.retraining import jobs
from services.retraining.base import Backend

EVIL = "evil.example"
"""The host every payload points at; nothing on a page may link or load from it."""
PAYLOADS = (
    f"[link](http://{EVIL}/link)",
    f"![image](http://{EVIL}/image.png)",
    f"<http://{EVIL}/autolink>",
    f"http://{EVIL}/bare",
    f"www.{EVIL}",
    f"mail@{EVIL}",
    f'<img src="http://{EVIL}/tag.png">',
    f'<a href="http://{EVIL}/tag">tag</a>',
    ":material/warning: :red[red] :smile:",
)
"""Each one is a link or an image (or an icon) when rendered as Markdown."""
SOURCES = {
    "fdxmodel": "a registered model's name",
    "fdxmodeldoc": "a registered model's description",
    "fdxmodeltag": "a registered model's tag value",
    "fdxversiondoc": "a model version's description",
    "fdxversiontag": "a model version's tag value",
    "fdxrun": "a run's name",
    "fdxruntag": "a run's tag value",
    "fdxrunuser": "a run's user",
    "fdxexperiment": "an experiment's name",
    "fdxsignature": "a signature's column name",
    "fdxreason": "a promotion request's reason",
    "fdxplan": "a promotion request's rollback plan",
    "fdxcomment": "an approver's comment",
    "fdxcancel": "a cancelled request's reason (its status reason)",
    "fdxrequester": "a person's name: the requester",
    "fdxapprover": "a person's name: the approver",
    "fdxviewer": "a person's name: the one looking at the page",
    "fdxnote": "a retraining job's note and log",
    "fdxurl": "a URL parameter",
}
"""Where untrusted text comes from, by the marker word its hostile value starts with."""
FORMULA = '=HYPERLINK("http://x","y")'
"""A spreadsheet formula: the name of a run, so every CSV export meets it."""
FORMULA_MODEL = '=HYPERLINK("x","y")'
"""The same, as a registered model's name (MLflow refuses ``:`` and ``/`` there)."""
REGISTRY_FORBIDS = ":/"
"""MLflow refuses these in registered model names; HTML character references spell them."""


def hostile(marker: str) -> str:
    """The marker word followed by every payload."""
    return " ".join([marker, *PAYLOADS])


def hostile_registry_name(marker: str) -> str:
    """A registered model name that MLflow accepts (no ``:`` or ``/``) and that still renders as
    links and images: the forbidden characters spelt as character references. A few payloads
    only, because the registry keeps at most 256 characters of a name."""
    spelt = {ord(c): f"&#{ord(c)};" for c in REGISTRY_FORBIDS}
    payloads = [p.translate(spelt) for p in PAYLOADS[:2]] + [PAYLOADS[4], PAYLOADS[5]]
    return " ".join([marker, *payloads, uuid.uuid4().hex[:6]])


# -- the oracle ------------------------------------------------------------------------------------

_MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])
_GFM_URL = re.compile(r"(?:https?://|www\.)[^\s<]*", re.IGNORECASE)
"""GitHub's literal autolinks, which Streamlit's Markdown (remark-gfm) also finds in text that
backslash escapes or character references spelt."""
_GFM_EMAIL = re.compile(r"[-.\w+]+@[-\w]+(?:\.[-\w]+)+")
_HTML_TARGET = re.compile(r"""(?:href|src)\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)
_ABSOLUTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//|www\.)", re.IGNORECASE)


def rendered_references(markdown: str) -> list[str]:
    """Every link and image target Streamlit's Markdown would make from ``markdown``."""
    found: list[str] = []
    for token in _MARKDOWN.parse(markdown):
        if token.type == "html_block":
            found += _HTML_TARGET.findall(token.content)
        for child in token.children or []:
            if child.type == "link_open":
                found.append(str(child.attrs.get("href", "")))
            elif child.type == "image":
                found.append(str(child.attrs.get("src", "")))
            elif child.type == "html_inline":
                found += _HTML_TARGET.findall(child.content)
            elif child.type == "text":
                found += _GFM_URL.findall(child.content)
                found += [f"mailto:{e}" for e in _GFM_EMAIL.findall(child.content)]
    return found


def foreign_references(markdown: str) -> list[str]:
    """The targets in :func:`rendered_references` that point away from the app."""
    return [r for r in rendered_references(markdown) if _ABSOLUTE.match(r)]


def rendered_text(markdown: str) -> str:
    """The plain text a reader sees, for a one-line ``markdown``."""
    return "".join(
        child.content
        for token in _MARKDOWN.parse(markdown)
        for child in token.children or []
        if child.type in {"text", "code_inline"}
    )


def shown(markdown: str) -> str:
    """What a reader sees of a one-line ``markdown``: its text, without the invisible word
    joiners that :func:`services.core.formatting.escape_markdown` adds."""
    return rendered_text(markdown).replace("\u2060", "")


# -- AppTest: what a page renders as Markdown ------------------------------------------------------

MARKDOWN_FIELDS = {"label", "help", "title"}
"""Fields Streamlit renders as Markdown in every element and block that has them."""
MARKDOWN_BODIES = {"Markdown", "Heading", "Alert", "Toast"}
"""Elements whose ``body`` is Markdown (``st.markdown``, captions, titles and headers,
``st.info`` and the other alerts, toasts); ``st.text`` and ``st.code`` are not."""
MARKDOWN_TEXTS = {"Progress", "Spinner"}
"""Elements whose ``text`` is Markdown."""
MARKDOWN_OPTIONS = {"Radio"}
"""Widgets whose options are Markdown (a select box shows its options as text)."""


def page_markdown(tree: Any) -> Iterator[tuple[str, str]]:
    """Every Markdown string an AppTest tree renders, as (element type.field, text)."""
    for proto in _protos(tree):
        yield from _markdown_fields(proto)


def page_bytes(tree: Any) -> bytes:
    """Everything an AppTest tree sends to the browser, tables included, for finding markers."""
    return b"\n".join(proto.SerializeToString() for proto in _protos(tree))


def _protos(node: Any) -> Iterator[Any]:
    proto = getattr(node, "proto", None)
    if proto is not None and hasattr(proto, "ListFields"):
        yield proto
    children = getattr(node, "children", None)
    if isinstance(children, dict):
        for child in children.values():
            yield from _protos(child)


def _markdown_fields(message: Any) -> Iterator[tuple[str, str]]:
    kind = type(message).__name__
    for field, value in message.ListFields():
        for item in value if field.is_repeated else [value]:
            if isinstance(item, str):
                markdown = (
                    field.name in MARKDOWN_FIELDS
                    or (field.name == "body" and kind in MARKDOWN_BODIES)
                    or (field.name == "text" and kind in MARKDOWN_TEXTS)
                    or (field.name == "options" and kind in MARKDOWN_OPTIONS)
                )
                if markdown:
                    yield f"{kind}.{field.name}", item
            elif hasattr(item, "ListFields"):
                yield from _markdown_fields(item)


# -- the world -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostileWorld:
    """What :func:`build_hostile_world` made, to open pages on."""

    model: str
    """A registered model named :func:`hostile_registry_name`: v1 (``@champion``) and v2."""
    experiment_id: str
    """The experiment with the hostile name; it holds both versions' runs."""
    run_id: str
    """v1's run: hostile name, tags and user; its signature has a hostile column."""
    other_run_id: str
    """v2's run, with a plain signature (so the two are incompatible)."""
    rejected_request_id: str
    """Requested with a hostile reason and plan, rejected with a hostile comment."""
    cancelled_request_id: str
    """Cancelled with a hostile reason."""
    open_request_id: str
    """Pending, requested by the hostile requester."""
    job_id: str
    """A finished retraining job of the model, requested by the hostile requester."""
    formula_model: str
    """A registered model named :data:`FORMULA_MODEL` (and a suffix), with a champion and a
    finished retraining job, so the Overview's CSVs list it."""
    formula_run_id: str
    """A run named :data:`FORMULA` in :attr:`experiment_id`."""
    viewer: str
    """A hostile person's name to look at the pages as."""


def build_hostile_world(tracking_uri: str, store: Store, backend: Backend) -> HostileWorld:
    """Put every source's hostile value into MLflow and the application store.

    Args:
        tracking_uri: The real MLflow server.
        store: The application store the app under test reads.
        backend: The retraining engine the app under test uses.
    """
    client = MlflowClient(tracking_uri)
    suffix = uuid.uuid4().hex[:6]
    experiment_id = client.create_experiment(f"{hostile('fdxexperiment')} {suffix}")
    run_id = _run(
        client,
        experiment_id,
        hostile("fdxrun"),
        hostile("fdxsignature"),
        {"note": hostile("fdxruntag"), "mlflow.user": hostile("fdxrunuser")},
    )
    other_run_id = _run(client, experiment_id, f"plain run {suffix}", "plain_column", {})
    formula_run_id = _run(client, experiment_id, FORMULA, "x", {"note": FORMULA})

    model = hostile_registry_name("fdxmodel")
    client.create_registered_model(
        model, tags={"team": hostile("fdxmodeltag")}, description=hostile("fdxmodeldoc")
    )
    for source_run in (run_id, other_run_id):
        client.create_model_version(
            model,
            f"runs:/{source_run}/model",
            source_run,
            tags={"note": hostile("fdxversiontag")},
            description=hostile("fdxversiondoc"),
        )
    client.set_registered_model_alias(model, "champion", "1")

    settings = load_settings({"MLFLOW_TRACKING_URI": tracking_uri}, secrets_path=Path("/dev/null"))
    services = Wiring(
        store=store,
        registry=TrackingGateway(settings),
        governance=load_governance(settings.governance_path),
    )
    requester = Identity(hostile("fdxrequester"), True, "operator")
    approver = Identity(hostile("fdxapprover"), True, "approver")

    def request(key: str) -> requests.PromotionRequest:
        return promotion.request_promotion(
            services,
            requester,
            model=model,
            version=2,
            target="champion",
            reason=hostile("fdxreason"),
            rollback_plan=hostile("fdxplan"),
            idempotency_key=f"{key}-{suffix}",
        )

    rejected = request("rejected")
    promotion.decide(
        services, approver, rejected.request_id, approve=False, comment=hostile("fdxcomment")
    )
    cancelled = request("cancelled")
    promotion.cancel(services, requester, cancelled.request_id, hostile("fdxcancel"))
    pending = request("pending")
    job = _finished_job(store, backend, requester, model, suffix)

    formula_model = f"{FORMULA_MODEL} {suffix}"
    client.create_registered_model(formula_model, description=FORMULA)
    client.create_model_version(formula_model, f"runs:/{formula_run_id}/model", formula_run_id)
    client.set_registered_model_alias(formula_model, "champion", "1")
    _finished_job(store, backend, requester, formula_model, f"formula-{suffix}")
    return HostileWorld(
        model=model,
        experiment_id=experiment_id,
        run_id=run_id,
        other_run_id=other_run_id,
        rejected_request_id=rejected.request_id,
        cancelled_request_id=cancelled.request_id,
        open_request_id=pending.request_id,
        job_id=job,
        formula_model=formula_model,
        formula_run_id=formula_run_id,
        viewer=hostile("fdxviewer"),
    )


def _run(
    client: MlflowClient, experiment_id: str, name: str, column: str, tags: dict[str, str]
) -> str:
    """A finished run with ``eval_f1`` and a model folder whose signature has ``column``."""
    run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    client.log_metric(run_id, "eval_f1", 0.8)
    client.log_param(run_id, "depth", "3")
    mlmodel = {
        "artifact_path": "model",
        "flavors": {},
        "signature": {
            "inputs": json.dumps([{"type": "double", "name": column, "required": True}]),
            "outputs": json.dumps([{"type": "double", "required": True}]),
        },
    }
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "MLmodel"
        path.write_text(yaml.safe_dump(mlmodel), encoding="utf-8")
        client.log_artifact(run_id, str(path), "model")
    client.set_terminated(run_id)
    return run_id


def _finished_job(
    store: Store, backend: Backend, requester: Identity, model: str, suffix: str
) -> str:
    """A retraining job whose note and log carry a payload, finished on the real engine."""
    job = jobs.submit_retraining(
        store,
        backend,
        requester,
        model=model,
        trigger="manual",
        params={"note": hostile("fdxnote")},
        idempotency_key=f"hostile-{suffix}",
        command_for=lambda _job_id: [sys.executable, "-c", f"print({hostile('fdxnote')!r})"],
    )
    deadline = time.monotonic() + 60
    while job.is_active and time.monotonic() < deadline:
        time.sleep(0.2)
        jobs.refresh_jobs(store, backend)
        job = jobs.get_job(store, job.job_id)
    assert not job.is_active, job
    return job.job_id
