"""Model: one registered model, opened as ``model?name=…`` (``&version=…&compare=…&metric=…``).

Used by ML engineers, reviewers and approvers deciding about a model's versions: its
description, tags and aliases; every version with its source run's key metrics; one version in
detail (status, stage, source run, tags, signature); two versions compared (params, metrics
with deltas, signature compatibility); and a metric across versions with the alias moves marked.
Every choice is in the URL, so a link reproduces the view. Text from MLflow stays text.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import streamlit as st

from services import cache
from services.core.errors import FlightdeckError, NotFound
from services.core.formatting import escape_heading, escape_markdown
from services.core.links import MODELS_PAGE, PROMOTIONS_PAGE, RUN_PAGE, ModelView
from services.core.records import AliasMove, ModelVersionSummary, Run
from services.experiments import charts, registry
from services.experiments.compare import keep_implicit
from services.experiments.run_detail import format_time, key_value_table
from services.governance import alias_history, promotion, requests
from services.governance.auth import Action

LAST_QUERY_KEY = "model.last_query"
WIDGET_KEYS = (
    "model.version",
    "model.compare",
    "model.only_differences",
    "model.chart_shown",
    "model.metric",
)
DATETIME = st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm [UTC]")

settings = cache.settings()
query = cache.read_query()
if st.session_state.get(LAST_QUERY_KEY) != query:
    # A new link was opened in this session: its URL wins over the widgets' previous state.
    for widget_key in WIDGET_KEYS:
        st.session_state.pop(widget_key, None)
view = ModelView.from_query(query)


def back_to_models() -> None:
    st.page_link(MODELS_PAGE, label="Back to Models", icon=":material/arrow_back:")


def show_version(version: ModelVersionSummary, run: Run | None) -> None:
    """One version: status, stage, source run, description, tags and signature."""
    st.markdown(
        f":material/info: **Status** {escape_markdown(version.status)}"
        f" · :material/flag: **Stage** {escape_markdown(version.stage)}"
        f" · :material/schedule: **Registered** {format_time(version.created_at)}"
        + (
            f" · :material/sell: **Aliases** {escape_markdown(', '.join(version.aliases))}"
            if version.aliases
            else ""
        )
    )
    if version.run_id:
        name = run.name if run is not None and run.name else version.run_id
        st.page_link(
            RUN_PAGE,
            label=f"Source run: {escape_markdown(name)}",
            icon=":material/description:",
            query_params={"run_id": version.run_id},
        )
        if run is None:
            st.caption("The source run could not be read: it may have been deleted for good.")
    else:
        st.caption("This version was not registered from a run.")
    if version.source:
        st.caption(f"Files: {escape_markdown(version.source)}")
    if version.description:
        st.text(version.description)
    if version.tags:
        st.dataframe(
            key_value_table(version.tags, "Tag"),
            hide_index=True,
            key="model.version_tags",
            column_config={"Tag": st.column_config.TextColumn(pinned=True)},
        )
    st.markdown("**Signature**")
    try:
        with st.spinner("Reading the signature…"):
            signature = cache.model_version_signature(settings, version.name, version.version)
    except FlightdeckError as exc:
        st.error(escape_markdown(str(exc)))
        return
    if signature is None:
        st.caption("This version declares no signature.")
    else:
        st.dataframe(registry.signature_table(signature), hide_index=True, key="model.signature")


# -- the model ------------------------------------------------------------------------------------

if not view.name:
    st.info("No model chosen. Open one from the Models page.", icon=":material/info:")
    back_to_models()
    st.stop()

try:
    with st.spinner("Loading the model…"):
        model = cache.registered_model(settings, view.name)
except NotFound:
    st.warning(
        f"There is no registered model named “{escape_markdown(view.name)}”. It may have been "
        "renamed or deleted, or the link is wrong.",
        icon=":material/search_off:",
    )
    back_to_models()
    st.stop()
except FlightdeckError as exc:
    st.error(escape_markdown(str(exc)))
    back_to_models()
    st.stop()
read_at = datetime.now(UTC)

st.page_link(MODELS_PAGE, label="All models", icon=":material/arrow_back:")
st.title(escape_heading(model.name))
if model.description:
    st.text(model.description)
if tags := registry.user_tags(model.tags):
    st.caption(f":material/sell: {escape_markdown(registry.tags_text(tags))}")
if model.aliases:
    st.markdown(
        " · ".join(
            f":material/bookmark: **@{escape_markdown(alias)}** → v{version}"
            for alias, version in sorted(model.aliases.items(), key=lambda item: item[1])
        )
    )
else:
    st.caption("No alias is set on this model.")

# -- promotion: request, roll back, and what happened so far --------------------------------------

me = cache.identity()
moves: list[AliasMove] = []
history_problem = ""
try:
    services = cache.wiring(settings)
    moves = alias_history.alias_history(services.store, model.name, services.governance.target)
    open_requests = promotion.list_requests(
        services.store, model=model.name, statuses=requests.OPEN_STATUSES
    )
except FlightdeckError as exc:
    history_problem = f"Promotion history is unavailable: {exc}"
    open_requests = []
request_column, *rollback_columns = st.columns(4, vertical_alignment="center")
request_column.page_link(
    PROMOTIONS_PAGE,
    label="Request a promotion",
    icon=":material/how_to_reg:",
    query_params={"model": model.name, **({"version": view.version} if view.version else {})},
    disabled=not me.may(Action.REQUEST_PROMOTION),
    help=None if me.may(Action.REQUEST_PROMOTION) else "Requesting needs the operator role.",
)
if not history_problem:
    try:
        previous_holders = alias_history.rollback_targets(services, model.name)
    except FlightdeckError as exc:
        previous_holders = {}
        history_problem = f"Rollback targets are unavailable: {exc}"
    for column, (alias, previous) in zip(rollback_columns, previous_holders.items(), strict=False):
        column.page_link(
            PROMOTIONS_PAGE,
            label=f"Roll back @{escape_markdown(alias)} to v{previous}",
            icon=":material/undo:",
            query_params={
                "model": model.name,
                "version": str(previous),
                "target": alias,
                "kind": requests.ROLLBACK,
            },
            disabled=not me.may(Action.REQUEST_PROMOTION),
        )
for request in open_requests:
    st.page_link(
        PROMOTIONS_PAGE,
        label=f"Open request: v{request.version} → {escape_markdown(request.target)} "
        f"({escape_markdown(request.status)}, by {escape_markdown(request.requested_by)})",
        icon=":material/pending_actions:",
        query_params={"request": request.request_id},
    )

# -- versions -------------------------------------------------------------------------------------

try:
    with st.spinner("Loading versions…"):
        versions = registry.with_aliases(cache.versions_of(settings, model.name), model.aliases)
except FlightdeckError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()

if not versions:
    st.info("This model has no versions yet: register one from a run.", icon=":material/info:")
    st.stop()


def show_versions(source_runs: dict[str, Run], metrics: list[str], key: str | None) -> None:
    st.dataframe(
        registry.versions_table(versions, source_runs, metrics),
        hide_index=True,
        key=key,
        column_config={
            registry.VERSION_COLUMN: st.column_config.NumberColumn(format="v%d", pinned=True),
            "Created": DATETIME,
            **{metric: st.column_config.NumberColumn(format="%.4g") for metric in metrics},
        },
    )


st.subheader(f"Versions ({len(versions):,})")
versions_slot = st.empty()  # the versions at once; their source runs' metrics once read
with versions_slot.container():
    show_versions({}, [], None)
try:
    with st.spinner("Reading the versions' source runs…"):
        source_runs = cache.runs_by_id(settings, registry.source_run_ids(versions))
except FlightdeckError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()
metrics = registry.key_metrics(source_runs.values())
with versions_slot.container():
    show_versions(source_runs, metrics, "model.versions")
if metrics:
    st.caption("Metrics are the latest values of each version's source run.")

# -- one version ----------------------------------------------------------------------------------

by_number = {v.version: v for v in registry.newest_first(versions)}
numbers = list(by_number)
wanted = registry.version_number(view.version)
if view.version and wanted not in by_number:
    st.warning(
        f"Version {escape_markdown(view.version)} of this model does not exist: it may have been "
        f"deleted. Showing v{numbers[0]}, the newest, instead.",
        icon=":material/search_off:",
    )
    view = replace(view, version="")
shown = wanted if wanted in by_number else numbers[0]

st.subheader("Version detail")
chosen = st.selectbox(
    "Version",
    numbers,
    index=numbers.index(shown),
    format_func=lambda number: registry.version_label(by_number[number]),
    key="model.version",
)
view = replace(view, version=keep_implicit(view.version, str(chosen), str(shown)))
version = by_number[chosen]
show_version(version, source_runs.get(version.run_id))

# -- two versions ---------------------------------------------------------------------------------

st.subheader("Compare versions")
others = [n for n in numbers if n != chosen]
if not others:
    st.info("This model has one version only: there is nothing to compare it with.")
else:
    implicit = registry.default_baseline(versions, chosen, model.aliases)
    linked = registry.version_number(view.compare)
    if view.compare and linked not in others:
        st.warning(
            f"Version {escape_markdown(view.compare)} cannot be compared with v{chosen}: it does "
            "not exist (it may have been deleted) or it is the same version.",
            icon=":material/search_off:",
        )
        view = replace(view, compare="")
    baseline = linked if linked in others else implicit
    if st.session_state.get("model.compare") not in others:
        st.session_state.pop("model.compare", None)  # it was B's version: pick afresh
    assert baseline is not None
    compared = st.selectbox(
        f"Compare v{chosen} (B) with (A)",
        others,
        index=others.index(baseline),
        format_func=lambda number: registry.version_label(by_number[number]),
        key="model.compare",
        help="A defaults to the champion, or to the version before B.",
    )
    view = replace(view, compare=keep_implicit(view.compare, str(compared), str(implicit)))
    a, b = by_number[compared], version
    run_a, run_b = source_runs.get(a.run_id), source_runs.get(b.run_id)
    if run_a is None or run_b is None:
        missing = ", ".join(f"v{v.version}" for v, r in ((a, run_a), (b, run_b)) if r is None)
        st.info(f"The source run of {missing} cannot be read, so params and metrics are not shown.")
    else:
        only_differences = st.toggle(
            "Only differences", value=not view.all_params, key="model.only_differences"
        )
        view = replace(view, all_params=not only_differences)
        comparison = registry.version_comparison(
            run_a, run_b, only_differences, labels=(f"v{a.version}", f"v{b.version}")
        )
        params_column, metrics_column = st.columns(2)
        with params_column:
            st.markdown(
                f"**Params** ({comparison.differing_params} of {comparison.total_params} differ)"
            )
            if comparison.params.empty:
                st.caption(
                    "Neither run logged params."
                    if not comparison.total_params
                    else "Every param has the same value. Turn off “Only differences” to see them."
                )
            else:
                st.dataframe(
                    comparison.params,
                    hide_index=True,
                    key="model.compare_params",
                    column_config={registry.PARAM_COLUMN: st.column_config.TextColumn(pinned=True)},
                )
        with metrics_column:
            st.markdown("**Metrics**")
            if comparison.metrics.empty:
                st.caption("Neither run logged metrics.")
            else:
                st.dataframe(
                    comparison.metrics,
                    hide_index=True,
                    key="model.compare_metrics",
                    column_config={
                        registry.METRIC_COLUMN: st.column_config.TextColumn(pinned=True),
                        registry.DELTA_COLUMN: st.column_config.NumberColumn(format="%+.4g"),
                    },
                )
    st.markdown("**Signature**")
    try:
        with st.spinner("Reading the signatures…"):
            signature_a = cache.model_version_signature(settings, model.name, a.version)
            signature_b = cache.model_version_signature(settings, model.name, b.version)
    except FlightdeckError as exc:
        st.error(escape_markdown(str(exc)))
    else:
        check = registry.signature_comparison(
            signature_a, signature_b, labels=(f"v{a.version}", f"v{b.version}")
        )
        verdict = "Compatible" if check.compatible else "Not compatible"
        message = f"{verdict}: {escape_markdown(check.reason)}."
        if check.compatible:
            st.success(message, icon=":material/check_circle:")
        else:
            st.warning(message, icon=":material/warning:")
        if not check.table.empty:
            st.dataframe(check.table, hide_index=True, key="model.compare_signature")

# -- a metric across versions ---------------------------------------------------------------------

st.subheader("A metric across versions")
all_metrics = registry.metric_names(source_runs.values())
chart_shown = st.toggle(
    "Chart a metric across versions, with each alias move",
    value=view.chart,
    key="model.chart_shown",
    help="Drawn on request, so the page opens faster.",
    disabled=not all_metrics,
)
view = replace(view, chart=chart_shown)
if not all_metrics:
    st.info("The runs these versions were registered from logged no metrics.")
elif chart_shown:
    if view.metric not in all_metrics:
        view = replace(view, metric="")
    implicit_metric = registry.default_metric(model, source_runs.values())
    preferred = registry.default_metric(model, source_runs.values(), view.metric)
    metric = st.selectbox(
        "Metric", all_metrics, index=all_metrics.index(preferred), key="model.metric"
    )
    view = replace(view, metric=keep_implicit(view.metric, metric, implicit_metric))
    st.plotly_chart(
        charts.version_metric_chart(
            registry.metric_points(versions, source_runs, metric),
            metric,
            [*moves, *registry.alias_moves_from_versions(model.aliases, read_at)],
        ),
        key="model.chart",
    )
    st.caption(
        "Each point is the version's source run's value. Lines mark each alias move on record; "
        "stars mark where each alias points now."
    )

# -- alias history --------------------------------------------------------------------------------

st.subheader("Alias history")
if history_problem:
    st.warning(escape_markdown(history_problem), icon=":material/database:")
elif not moves:
    st.caption(
        "No alias of this model has moved since Flightdeck started watching it. Moves made "
        "through Flightdeck, and moves made elsewhere, appear here."
    )
else:
    st.dataframe(
        alias_history.history_table(moves),
        hide_index=True,
        key="model.history",
        column_config={"When": DATETIME},
    )
    with st.expander("What did an alias point at, at a given time?"):
        alias_column, date_column, time_column = st.columns(3)
        asked_alias = alias_column.selectbox(
            "Alias", sorted({m.alias for m in moves}), key="model.asked_alias"
        )
        asked_date = date_column.date_input("Date (UTC)", key="model.asked_date")
        asked_time = time_column.time_input("Time (UTC)", key="model.asked_time")
        asked_at = datetime.combine(asked_date, asked_time, tzinfo=UTC)
        found = alias_history.holder_at([m for m in moves if m.alias == asked_alias], asked_at)
        if found is None:
            st.info(
                f"Flightdeck has no record of @{escape_markdown(asked_alias)} before that time."
            )
        else:
            who = "someone outside Flightdeck" if found.external else found.actor
            st.markdown(
                f"At {asked_at:%Y-%m-%d %H:%M} UTC, **@{escape_markdown(asked_alias)}** pointed "
                f"at **{'no version' if found.version is None else f'v{found.version}'}**, "
                f"since {found.at:%Y-%m-%d %H:%M} UTC, moved by {escape_markdown(who)}."
            )
            if found.reason:
                st.caption("Why:")
                st.text(found.reason)

cache.write_query(view.to_query())
st.session_state[LAST_QUERY_KEY] = cache.read_query()
