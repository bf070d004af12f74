"""Admin: who holds which role, the promotion policy and each model's gates, and the audit log.

Used by admins and auditors to see how ``flightdeck.toml`` is configured, to check that the
audit log's hash chain is intact ("Verify the chain"), and to read its newest events, filtered
by model name and action (``admin?model=…&action=…``). Every role may view it: nothing on this
page writes. Actors, subjects and details are untrusted text and are shown only in tables.
"""

from __future__ import annotations

import streamlit as st

from services import cache
from services.control_loop.passes import recent_passes
from services.core.errors import FlightdeckError
from services.core.formatting import escape_markdown
from services.core.store import Store
from services.governance import admin
from services.governance.notifications import outbox

MODEL_KEY = "admin.model"
ACTION_KEY = "admin.action"
VERIFY_KEY = "admin.verify"
LAST_QUERY_KEY = "admin.last_query"
ALL_ACTIONS = "All actions"

settings = cache.settings()
governance = cache.governance()
identity = cache.identity()
store: Store | None = None
try:
    store = cache.store(settings)
    store_problem: FlightdeckError | None = None
except FlightdeckError as exc:
    store_problem = exc

st.title("Admin")
st.caption(
    "Roles, the promotion policy and the gates as configured in "
    f"`{escape_markdown(settings.governance_path.name)}`, and the audit log. Read-only: change "
    "roles and gates in that file."
)

st.subheader("You")
how = {"oidc": "signed in", "proxy": "identified by the proxy"}.get(
    identity.source, "development mode, not authenticated"
)
st.markdown(f"**{escape_markdown(identity.name)}** · role **{identity.role}** · {how}")

st.subheader("Roles")
st.dataframe(admin.roles_table(governance), hide_index=True, width="stretch")
st.caption("Each role may do everything the roles above it may.")

left, right = st.columns([1, 2])
with left:
    st.subheader("Promotion policy")
    st.dataframe(admin.policy_table(governance), hide_index=True, width="stretch")
with right:
    st.subheader("Gates")
    st.dataframe(admin.gates_table(governance), hide_index=True, width="stretch")
    st.caption("A model without its own row uses the default gates.")

st.subheader("Control loop")
if store is not None:
    try:
        passes = recent_passes(store)
    except FlightdeckError as exc:
        passes = []
        st.warning(escape_markdown(str(exc)))
    if passes:
        st.caption(
            "What `python -m jobs.scheduler` did on its recent passes, newest first: only the "
            "replica that holds the leader lock runs them."
        )
        st.dataframe(admin.passes_table(passes), hide_index=True, width="stretch")
    else:
        st.info(
            "The control loop has not run against this store: start `python -m jobs.scheduler` "
            "(`make run` does).",
            icon=":material/sync_problem:",
        )

    try:
        sent = outbox(store, limit=20)
    except FlightdeckError as exc:
        sent = []
        st.warning(escape_markdown(str(exc)))
    if sent:
        st.markdown("**Notifications** (newest first: each attempt is recorded, failures retried)")
        st.dataframe(admin.outbox_table(sent), hide_index=True, width="stretch")

st.subheader("Audit log")
if store is None:
    st.error(escape_markdown(str(store_problem)))
    st.stop()

st.caption(
    "Every request, decision and alias change, append-only. Each event carries the hash of the "
    "one before it, so a changed, removed or reordered event breaks the chain; the newest "
    "event is anchored in MLflow, so removing events from the end shows too."
    + (" Events are keyed (HMAC)." if store.audit_keyed else " Events are not keyed.")
)
if st.button("Verify the chain", icon=":material/verified:", key=VERIFY_KEY):
    try:
        with st.spinner("Checking every event and the anchor…"):
            result = admin.verify_audit(store, cache.audit_anchor(settings))
    except FlightdeckError as exc:
        st.error(escape_markdown(str(exc)))
    else:
        chain, anchored = result.chain, result.anchor
        # Problems quote the store and MLflow (a scheme, an error): untrusted text.
        problem, found = escape_markdown(chain.problem), escape_markdown(anchored.message)
        noun = "event" if chain.events == 1 else "events"
        counted = f"{chain.events:,} {noun}" + (f", {chain.keyed:,} keyed" if chain.keyed else "")
        if not chain.intact:
            state = "Cannot be verified" if chain.unverifiable else "Broken"
            st.error(
                f"{state} at event {chain.first_broken}: {problem}. {counted} checked.",
                icon=":material/gpp_bad:",
            )
        if anchored.broken:
            st.error(f"Broken: {found}.", icon=":material/gpp_bad:")
        elif result.intact:
            st.success(f"Intact: {counted}; {found}.", icon=":material/verified:")
        elif chain.intact:
            st.warning(
                f"Chain intact: {counted}. Anchor not checked: {found}. Events "
                "removed from the end cannot be ruled out.",
                icon=":material/warning:",
            )

query = cache.read_query()
if st.session_state.get(LAST_QUERY_KEY) != query:
    # A new link was opened in this session: its URL wins over the filters' old values.
    st.session_state.pop(MODEL_KEY, None)
    st.session_state.pop(ACTION_KEY, None)
url_model = (query.get("model") or [""])[-1]
url_action = (query.get("action") or [""])[-1]

try:
    actions = admin.audit_actions(store)
except FlightdeckError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()
options = [ALL_ACTIONS, *actions]
if url_action and url_action not in options:
    options.append(url_action)  # a shared link's action that has not happened here (yet)

model_column, action_column = st.columns(2)
model_text = model_column.text_input(
    "Model name contains",
    value=url_model,
    key=MODEL_KEY,
    placeholder="Part of a model's name",
    icon=":material/search:",
)
chosen = action_column.selectbox(
    "Action", options, index=options.index(url_action or ALL_ACTIONS), key=ACTION_KEY
)
action = "" if chosen == ALL_ACTIONS else str(chosen)
cache.write_query(
    {
        **({"model": [model_text]} if model_text.strip() else {}),
        **({"action": [action]} if action else {}),
    }
)
st.session_state[LAST_QUERY_KEY] = cache.read_query()

try:
    events = admin.audit_log(store, model_contains=model_text, action=action)
except FlightdeckError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()

if not events:
    st.info("No audit events match." if (model_text.strip() or action) else "No audit events yet.")
    st.stop()

st.caption(
    f"The newest {len(events):,} matching events, newest first (at most {admin.AUDIT_TABLE_LIMIT})."
)
st.dataframe(
    admin.events_table(events),
    hide_index=True,
    width="stretch",
    column_config={"Details": st.column_config.TextColumn(width="large")},
)
