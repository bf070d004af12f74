"""Promotions: request a model version's promotion, and decide requests (four-eyes, gates).

Operators request; approvers see the champion against the challenger, the gates, and approve
or reject; an approval that completes the request moves the alias at once. The request being
looked at (``request``) and a prefilled new request (``model``, ``version``, ``target``,
``kind``) are in the URL, so a link to a decision can be sent to an approver.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pandas as pd
import streamlit as st

from services import cache
from services.core.errors import FlightdeckError, NotFound
from services.core.formatting import escape_heading, escape_markdown
from services.core.links import MODEL_PAGE
from services.governance import promotion, requests
from services.governance.auth import Action, role_phrase
from services.governance.decision import decision_view

STATUS_ICONS = {
    requests.PENDING: ":material/hourglass_top:",
    requests.EXECUTING: ":material/sync:",
    requests.EXECUTED: ":material/check_circle:",
    requests.REJECTED: ":material/block:",
    requests.EXPIRED: ":material/timer_off:",
    requests.CANCELLED: ":material/cancel:",
    requests.STALE: ":material/sync_problem:",
    requests.FAILED: ":material/error:",
}
FORM_KEY = "promotions.form_key"  # idempotency key: one request per form, however often sent

settings = cache.settings()
me = cache.identity()
query = cache.read_query()
st.title("Promotions")

try:
    services = cache.wiring(settings)
    every_request = promotion.list_requests(services.store)
except FlightdeckError as exc:
    st.error(escape_markdown(str(exc)), icon=":material/database:")
    st.stop()


def perform(label: str, action: Callable[[], requests.PromotionRequest]) -> None:
    """Run a write from a button's callback, before the page reruns, and keep its outcome.

    Callbacks run before the script, so the write cannot be cut short by a rerun, and it acts
    as the person who saw the button.
    """
    try:
        done = action()
    except FlightdeckError as exc:
        st.session_state["promotions.problem"] = f"{label}: {escape_markdown(str(exc))}"
        return
    cache.clear_all()
    cache.write_query({"request": [done.request_id]})
    st.session_state["promotions.flash"] = (
        f"{label}: done. The request is {escape_markdown(done.status)}."
    )


def decide(request_id: str, approve: bool) -> None:
    perform(
        "Approve" if approve else "Reject",
        lambda: promotion.decide(
            services,
            me,
            request_id,
            approve=approve,
            comment=st.session_state.get("promotions.comment", ""),
            override_reason=st.session_state.get("promotions.override", ""),
        ),
    )


def send_form(kind: str, directly: bool = False) -> None:
    """The request form's callback: a request, or an admin's rollback without approval."""
    state = st.session_state
    target = {
        "model": state["promotions.model"],
        "version": int(state["promotions.version"]),
        "target": state["promotions.target"],
        "reason": state.get("promotions.reason", ""),
        "idempotency_key": state[FORM_KEY],
    }
    if directly:
        perform("Roll back", lambda: promotion.execute_directly(services, me, **target))
    else:
        plan = state.get("promotions.plan", "")
        perform(
            "Request",
            lambda: promotion.request_promotion(
                services, me, rollback_plan=plan, kind=kind, **target
            ),
        )
    if "promotions.problem" not in state:
        del state[FORM_KEY]  # the next form is a new request


if flash := st.session_state.pop("promotions.flash", None):
    st.success(flash, icon=":material/check_circle:")
if problem := st.session_state.pop("promotions.problem", None):
    st.error(problem, icon=":material/error:")

# -- one request: the decision page ----------------------------------------------------------------

chosen_id = (query.get("request") or [""])[0]
chosen = next((r for r in every_request if r.request_id == chosen_id), None)
if chosen_id and chosen is None:
    st.warning(
        f"No promotion request has the id “{escape_markdown(chosen_id)}”. Showing all requests."
    )
if chosen is not None:
    if st.button("All requests", icon=":material/arrow_back:"):
        cache.write_query({})
        st.rerun()
    target_text = f"@{chosen.target}" if chosen.target_kind == "alias" else chosen.target
    st.header(
        f"{escape_heading(chosen.model)} v{chosen.version} → {escape_markdown(target_text)}",
        anchor=False,
    )
    st.caption(
        f"{STATUS_ICONS.get(chosen.status, '')} **{escape_markdown(chosen.status)}** · "
        f"{escape_markdown(chosen.kind)} requested by {escape_markdown(chosen.requested_by)} on "
        f"{chosen.requested_at:%Y-%m-%d %H:%M} UTC · expires "
        f"{chosen.expires_at:%Y-%m-%d %H:%M} UTC · request {escape_markdown(chosen.request_id[:8])}"
    )
    if chosen.status_reason:
        st.info(escape_markdown(chosen.status_reason))
    st.page_link(
        MODEL_PAGE,
        label="Open the model",
        icon=":material/model_training:",
        query_params={"name": chosen.model},
    )
    reason_column, plan_column = st.columns(2)
    with reason_column:
        st.markdown("**Reason**")
        st.text(chosen.reason)
    with plan_column:
        st.markdown("**Rollback plan**")
        st.text(chosen.rollback_plan or "(none given)")

    try:
        with st.spinner("Reading both versions from MLflow…"):
            view = decision_view(services, chosen)
    except FlightdeckError as exc:
        st.error(escape_markdown(str(exc)))
        st.stop()

    st.subheader("Gates", anchor=False)
    for gate in view.gates:
        icon = ":material/check_circle:" if gate.passed else ":material/cancel:"
        colour = "green" if gate.passed else "red"
        st.markdown(f":{colour}[{icon}] **{escape_markdown(gate.name)}**")
        st.caption(escape_markdown(gate.detail))
        if gate.self_reported:  # the challenger's own claims: shown, never trusted
            st.caption(
                ":orange[:material/report: **Self-reported, not trusted:**] "
                + escape_markdown(gate.self_reported)
            )

    st.subheader("Champion against challenger", anchor=False)
    st.caption(escape_markdown(view.evaluation_note))
    if view.comparison is not None:
        metric_column, param_column = st.columns(2)
        with metric_column:
            st.markdown("**Metrics** (Δ = proposed − now)")
            st.dataframe(view.comparison.metrics, hide_index=True)
        with param_column:
            st.markdown(
                f"**Params that differ** ({view.comparison.differing_params} of "
                f"{view.comparison.total_params})"
            )
            st.dataframe(view.comparison.params, hide_index=True)
    elif view.challenger is None:
        st.warning(f"Version {chosen.version} was deleted after the request.")
    else:
        st.caption("No current holder: nothing to compare with.")
    st.markdown("**Signature**")
    st.caption(escape_markdown(view.signature.reason))
    if not view.signature.table.empty:
        st.dataframe(view.signature.table, hide_index=True)

    st.subheader("Decision", anchor=False)
    for decision in chosen.decisions:
        verdict = "approved" if decision.approve else "rejected"
        st.text(f"{decision.decided_by} {verdict} on {decision.decided_at:%Y-%m-%d %H:%M} UTC")
        if decision.comment:
            st.caption(escape_markdown(decision.comment))
    if chosen.override_by:
        st.caption(
            f"Gates overridden by {escape_markdown(chosen.override_by)}: "
            f"{escape_markdown(chosen.override_reason or '')}"
        )

    own = me.name.casefold() == chosen.requested_by.casefold()
    if chosen.status == requests.PENDING:
        why_not = (
            "You requested this promotion: another approver must decide it (four-eyes)."
            if own
            else ""
            if me.may(Action.DECIDE_PROMOTION)
            else f"You are {role_phrase(me.role)}: deciding needs the approver role."
        )
        if why_not:
            st.info(why_not, icon=":material/lock:")
        needs_override = not view.gates_pass
        with st.form("promotions.decide"):
            st.text_area(
                "Comment", placeholder="Why you approve or reject", key="promotions.comment"
            )
            if needs_override:
                st.text_input(
                    "Override failing gates (admins only): reason",
                    disabled=not me.may(Action.OVERRIDE_GATE),
                    help="A failing gate blocks approval unless an admin overrides it.",
                    key="promotions.override",
                )
            approve_column, reject_column = st.columns(2)
            approve_column.form_submit_button(
                "Approve and promote",
                type="primary",
                icon=":material/check:",
                disabled=bool(why_not) or (needs_override and not me.may(Action.OVERRIDE_GATE)),
                on_click=decide,
                args=(chosen.request_id, True),
            )
            reject_column.form_submit_button(
                "Reject",
                icon=":material/block:",
                disabled=bool(why_not),
                on_click=decide,
                args=(chosen.request_id, False),
            )
        if own or me.may(Action.ADMINISTER):
            with st.expander("Cancel this request"):
                reason_text = st.text_input("Why", key="promotions.cancel_reason")
                st.button(
                    "Cancel the request",
                    icon=":material/cancel:",
                    on_click=perform,
                    args=(
                        "Cancel",
                        lambda: promotion.cancel(services, me, chosen.request_id, reason_text),
                    ),
                )
    elif chosen.status == requests.FAILED:
        st.button(
            "Retry the move",
            icon=":material/replay:",
            type="primary",
            disabled=not me.may(Action.DECIDE_PROMOTION),
            help="Moves the alias if it still points where the request expected.",
            on_click=perform,
            args=("Retry", lambda: promotion.retry(services, me, chosen.request_id)),
        )
    st.stop()

# -- every request --------------------------------------------------------------------------------

st.subheader("Requests", anchor=False)
if not every_request:
    st.info(
        "No promotion requests yet. An operator opens one below, or from a model's page.",
        icon=":material/inbox:",
    )
else:
    table = pd.DataFrame(
        [
            {
                "Request": r.request_id[:8],
                "Status": r.status,
                "Model": r.model,
                "Version": r.version,
                "Target": r.target,
                "Holder then": r.expected_holder,
                "Kind": r.kind,
                "Requested by": r.requested_by,
                "Requested": r.requested_at,
                "Approved by": ", ".join(r.approvers),
            }
            for r in every_request
        ]
    )
    picked = st.dataframe(
        table,
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key="promotions.table",
        column_config={"Requested": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")},
    )
    st.caption("Select a request to see its decision page.")
    if picked.selection.rows:
        cache.write_query({"request": [every_request[picked.selection.rows[0]].request_id]})
        st.rerun()

# -- a new request ---------------------------------------------------------------------------------

st.subheader("Request a promotion", anchor=False)
if not me.may(Action.REQUEST_PROMOTION):
    st.info(
        f"You are {role_phrase(me.role)}: requesting a promotion needs the operator role.",
        icon=":material/lock:",
    )
prefill_model = (query.get("model") or [""])[0]
try:
    models = [m.name for m in cache.registered_models(settings)]
    if prefill_model and prefill_model not in models:
        # Registered after the cached list was read: ask MLflow for this one model.
        models.append(cache.registered_model(settings, prefill_model).name)
except NotFound:
    st.warning(
        f"No registered model is named “{escape_markdown(prefill_model)}”: pick one below.",
        icon=":material/search_off:",
    )
except FlightdeckError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()
if not models:
    st.info("No registered models yet: register a version from a run first.")
    st.stop()

model = st.selectbox(
    "Model",
    models,
    index=models.index(prefill_model) if prefill_model in models else 0,
    key="promotions.model",
)
versions = [v.version for v in cache.versions_of(settings, model)]
if not versions:
    st.info(f"{escape_markdown(model)} has no versions yet: register one from a run first.")
    st.stop()
prefill_version = (query.get("version") or [""])[0]
try:
    target_choices = promotion.target_choices(
        services.governance, list(cache.registered_model(settings, model).aliases), model
    )
except FlightdeckError as exc:
    st.error(str(exc))
    st.stop()
prefill_target = (query.get("target") or [target_choices[0]])[0]
kind = (query.get("kind") or [requests.PROMOTION])[0]
if kind == requests.ROLLBACK:
    st.caption(":material/undo: Rollback: the form is filled in with the previous holder.")
st.session_state.setdefault(FORM_KEY, uuid.uuid4().hex)
with st.form("promotions.request"):
    choices = sorted(versions, reverse=True)
    st.selectbox(
        "Version",
        choices,
        index=choices.index(int(prefill_version))
        if prefill_version.isdigit() and int(prefill_version) in choices
        else 0,
        key="promotions.version",
    )
    st.selectbox(
        "Target alias" if services.governance.target == "alias" else "Target stage",
        target_choices,
        index=target_choices.index(prefill_target) if prefill_target in target_choices else 0,
        key="promotions.target",
    )
    st.text_area("Reason", placeholder="What is better, and how you know", key="promotions.reason")
    st.text_area(
        "Rollback plan", placeholder="How to undo it if it goes wrong", key="promotions.plan"
    )
    st.form_submit_button(
        "Request promotion",
        type="primary",
        icon=":material/send:",
        disabled=not me.may(Action.REQUEST_PROMOTION),
        on_click=send_form,
        args=(kind,),
    )
    if kind == requests.ROLLBACK and me.may(Action.EXECUTE_DIRECTLY):
        st.form_submit_button(
            "Roll back now, without approval",
            icon=":material/undo:",
            help="Admins only: moves the alias at once; the reason is recorded in the audit log.",
            on_click=send_form,
            args=(kind, True),
        )
