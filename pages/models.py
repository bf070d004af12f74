"""Models: every registered model in MLflow's registry, searchable by name (``models?q=…``).

Used by ML engineers, reviewers and approvers to find a model: its aliases and the versions
they point at, its latest version, tags, description and last change. Selecting a row opens the
model's page. Names, tags and descriptions come from MLflow and are shown only in the table.
"""

from __future__ import annotations

import streamlit as st

from services import cache
from services.core.errors import FlightdeckError
from services.core.formatting import escape_markdown
from services.core.links import MODEL_PAGE
from services.experiments import registry

SEARCH_KEY = "models.search"
LAST_QUERY_KEY = "models.last_query"

settings = cache.settings()
query = cache.read_query()
if st.session_state.get(LAST_QUERY_KEY) != query:
    # A new link was opened in this session: its URL wins over the search box's old text.
    st.session_state.pop(SEARCH_KEY, None)
url_text = (query.get("q") or [""])[-1]

st.title("Models")
st.caption("Registered models in MLflow's model registry. Select a row to open a model.")
text = st.text_input(
    "Search by name",
    value=url_text,
    key=SEARCH_KEY,
    placeholder="Part of a model's name",
    icon=":material/search:",
)
cache.write_query({"q": [text]} if text.strip() else {})
st.session_state[LAST_QUERY_KEY] = cache.read_query()

try:
    with st.spinner("Loading registered models…"):
        models = cache.registered_models(settings)
except FlightdeckError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()

if not models:
    st.info(
        "No registered models yet: register a version from a run (in MLflow, or with "
        "`mlflow.register_model`), and it will be listed here.",
        icon=":material/model_training:",
    )
    st.stop()

table = registry.models_table(models, text)
if table.empty:
    st.info(
        f"No model name contains “{escape_markdown(text.strip())}”.", icon=":material/search_off:"
    )
    st.stop()

st.caption(f"{len(table):,} of {len(models):,} models")
event = st.dataframe(
    table,
    hide_index=True,
    key="models.table",
    on_select="rerun",
    selection_mode="single-row",
    column_config={
        registry.MODEL_COLUMN: st.column_config.TextColumn(pinned=True),
        "Latest version": st.column_config.NumberColumn(format="v%d"),
        "Updated": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm [UTC]"),
    },
)
chosen = registry.selected_model(table, event.selection.rows)
if chosen is not None:
    st.switch_page(MODEL_PAGE, query_params={"name": chosen})
