"""Retraining: start a model's retraining, follow its job live, and see the policies.

Operators click "Retrain now"; the job runs on the configured engine, its log tails live, and
when it succeeds its version is judged against the champion and, if the gates pass, proposed for
promotion. The job being looked at (``job``) and the model of the form (``model``) are in the URL.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from services import cache
from services.core.errors import ConfigurationError, FlightdeckError
from services.core.formatting import ago, escape_markdown
from services.core.links import MODEL_PAGE, MONITORING_PAGE, PROMOTIONS_PAGE, RUN_PAGE
from services.governance.auth import Action, role_phrase
from services.governance.config import RetrainingPolicy, parse_policy
from services.monitoring.runs import RED, drift_status
from services.retraining.base import CANCELLED, FAILED, LOST, QUEUED, RUNNING, SUCCEEDED
from services.retraining.engines import job_environment, training_command
from services.retraining.jobs import (
    RetrainingJob,
    cancel_retraining,
    get_job,
    job_log,
    list_jobs,
    submit_retraining,
)
from services.retraining.policy import backtest
from services.retraining.policy_config import save_policy
from services.retraining.scheduler import decay_baseline, recent_decisions

STATUS_ICONS = {
    QUEUED: ":material/hourglass_top:",
    RUNNING: ":material/progress_activity:",
    SUCCEEDED: ":material/check_circle:",
    FAILED: ":material/error:",
    CANCELLED: ":material/cancel:",
    LOST: ":material/help:",
}
LIVE_REFRESH_S = 2.0  # how often an active job's status and log tail refresh
LOG_TAIL_LINES = 200
SETTLING_KEY = "retraining.settling_job"  # the job the live panel saw running or unjudged
FORM_KEY = "retraining.form_key"  # idempotency key: one job per form, however often sent

settings = cache.settings()
me = cache.identity()
query = cache.read_query()
st.title("Retraining")

try:
    services = cache.wiring(settings)
    backend = services.backend
    models = [m.name for m in cache.registered_models(settings)]
except FlightdeckError as exc:
    st.error(escape_markdown(str(exc)), icon=":material/error:")
    st.stop()
st.caption(
    f"Jobs run on the **{backend.name}** engine. A version that passes the promotion gates "
    "against the champion is proposed for approval; a person decides."
)


def start_retraining() -> None:
    """The form's callback: submit before the page reruns, as the person who clicked."""
    state = st.session_state
    model = state["retraining.model"]
    note = state.get("retraining.note", "").strip()
    try:
        job = submit_retraining(
            services.store,
            backend,
            me,
            model=model,
            trigger="manual",
            params={"note": note} if note else {},
            idempotency_key=state[FORM_KEY],
            command_for=training_command(model, "manual", me.name),
            known_models=models,
            env=job_environment(settings),
        )
    except FlightdeckError as exc:
        state["retraining.problem"] = (
            f"Retrain {escape_markdown(model)}: {escape_markdown(str(exc))}"
        )
        return
    del state[FORM_KEY]  # the next click is a new job
    cache.write_query({"job": [job.job_id]})
    state["retraining.flash"] = (
        f"Started retraining {escape_markdown(model)} (job {job.job_id[:8]})."
    )


def cancel(job_id: str) -> None:
    try:
        cancel_retraining(services.store, backend, me, job_id, "cancelled from the page")
    except FlightdeckError as exc:
        st.session_state["retraining.problem"] = f"Cancel: {escape_markdown(str(exc))}"


if flash := st.session_state.pop("retraining.flash", None):
    st.success(flash, icon=":material/check_circle:")
if problem := st.session_state.pop("retraining.problem", None):
    st.error(problem, icon=":material/error:")

# -- suggestions: drift is red --------------------------------------------------------------------

try:
    drift_by_model = cache.latest_monitoring(
        settings, models, services.governance.drift.consecutive
    )
except FlightdeckError as exc:
    st.warning(
        f"Drift could not be read, so no retraining is suggested: {escape_markdown(str(exc))}",
        icon=":material/sync_problem:",
    )
    drift_by_model = {}
for name in models:
    status = drift_status(drift_by_model.get(name, []), services.governance.drift)
    if status.level == RED:
        with st.container(border=True):
            st.markdown(
                f":red[:material/warning:] **Retraining suggested for {escape_markdown(name)}**: "
                f"drift is red ({escape_markdown(status.reason)})."
            )
            st.page_link(
                MONITORING_PAGE,
                label="See the drift",
                icon=":material/monitoring:",
                query_params={"model": name},
            )

# -- retrain now ----------------------------------------------------------------------------------

st.subheader("Retrain now", anchor=False)
may_trigger = me.may(Action.TRIGGER_RETRAINING)
if not may_trigger:
    st.info(
        f"You are {role_phrase(me.role)}: starting a retraining needs the operator role.",
        icon=":material/lock:",
    )
if not models:
    st.info("No registered models yet: register a model in MLflow, or run `make run` for the demo.")
else:
    st.session_state.setdefault(FORM_KEY, uuid.uuid4().hex)
    wanted = (query.get("model") or [""])[0]
    form_columns = st.columns([2, 3, 1], vertical_alignment="bottom")
    form_columns[0].selectbox(
        "Model",
        models,
        index=models.index(wanted) if wanted in models else 0,
        key="retraining.model",
        disabled=not may_trigger,
    )
    form_columns[1].text_input(
        "Note (optional)",
        key="retraining.note",
        placeholder="Why now? e.g. new labelled data arrived",
        disabled=not may_trigger,
    )
    form_columns[2].button(
        "Retrain now",
        type="primary",
        icon=":material/model_training:",
        on_click=start_retraining,
        disabled=not may_trigger,
    )

# -- jobs -----------------------------------------------------------------------------------------

st.subheader("Jobs", anchor=False)
try:
    jobs = list_jobs(services.store)
except FlightdeckError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()


def settling(job: RetrainingJob) -> bool:
    """Running, or finished but not judged yet: the live panel refreshes until it is judged."""
    return job.is_active or job.outcome is None


def duration(job: RetrainingJob) -> str:
    if job.started_at is None:
        return ""
    seconds = ((job.ended_at or datetime.now(UTC)) - job.started_at).total_seconds()
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


if not jobs:
    st.info("No retraining jobs yet. Start one above; scheduled ones appear here too.")
else:
    table = pd.DataFrame(
        [
            {
                "Job": job.job_id[:8],
                "Model": job.model,
                "Status": job.status,
                "Engine": job.engine,
                "Trigger": job.trigger,
                "Requested by": job.requested_by,
                "Requested": job.created_at,
                "Duration": duration(job),
                "Version": job.new_version,
                "Outcome": job.status_reason.split("\n")[0] or job.outcome or "",
            }
            for job in jobs
        ]
    )
    st.dataframe(table, hide_index=True, column_config={"Version": st.column_config.NumberColumn()})
    chosen_id = (query.get("job") or [jobs[0].job_id])[0]
    ids = [job.job_id for job in jobs]
    labels = {job.job_id: f"{job.job_id[:8]} · {job.model} · {job.status}" for job in jobs}
    picked = st.selectbox(
        "Job",
        ids,
        index=ids.index(chosen_id) if chosen_id in ids else 0,
        format_func=lambda job_id: labels[job_id],
    )
    if picked != chosen_id:
        cache.write_query({"job": [picked]})

    def show_job(job_id: str) -> None:
        """Status, links and the log tail of one job; refreshes itself while the job runs."""
        job = get_job(services.store, job_id)
        if st.session_state.get(SETTLING_KEY) == job_id and not settling(job):
            st.session_state.pop(SETTLING_KEY)
            st.rerun()  # the control loop recorded the end: the table and the new version's links
        if settling(job):
            st.session_state[SETTLING_KEY] = job_id
        with st.container(border=True):
            st.markdown(
                f"{STATUS_ICONS.get(job.status, '')} **{escape_markdown(job.status)}** · "
                f"{escape_markdown(job.model)} · {escape_markdown(job.trigger)} · requested by "
                f"{escape_markdown(job.requested_by)} {ago(job.created_at)} · engine "
                f"{escape_markdown(job.engine)}"
                + (f" · exit code {job.exit_code}" if job.exit_code is not None else "")
            )
            if job.is_active:
                st.progress(
                    0.5 if job.status == RUNNING else 0.1, text=f"{escape_markdown(job.status)}…"
                )
            if settling(job):
                st.caption(
                    "The control loop (`python -m jobs.scheduler`, started by `make run`) records "
                    "the job's progress and judges its outcome on each pass."
                )
            if job.status_reason:
                st.text(job.status_reason)
            if job.outcome:
                st.info(escape_markdown(job.outcome), icon=":material/gavel:")
            links = st.columns(4)
            if job.mlflow_run_id:
                links[0].page_link(
                    RUN_PAGE,
                    label="Training run",
                    icon=":material/description:",
                    query_params={"run_id": job.mlflow_run_id},
                )
            if job.new_version is not None:
                links[1].page_link(
                    MODEL_PAGE,
                    label=f"Version {job.new_version}",
                    icon=":material/deployed_code:",
                    query_params={"name": job.model, "version": str(job.new_version)},
                )
            if job.promotion_request_id:
                links[2].page_link(
                    PROMOTIONS_PAGE,
                    label="Promotion request",
                    icon=":material/how_to_reg:",
                    query_params={"request": job.promotion_request_id},
                )
            if job.is_active:
                links[3].button(
                    "Cancel",
                    icon=":material/stop_circle:",
                    on_click=cancel,
                    args=(job.job_id,),
                    disabled=not may_trigger,
                )
            try:
                log = job_log(backend, job, LOG_TAIL_LINES)
            except FlightdeckError as exc:
                log = f"(the log could not be read: {exc})"
            st.code(log or "(no output yet)", language="text")

    st.fragment(
        show_job, run_every=LIVE_REFRESH_S if settling(get_job(services.store, picked)) else None
    )(picked)

# -- policies -------------------------------------------------------------------------------------

st.subheader("Policies", anchor=False)
st.caption(
    "When the scheduler retrains each model on its own, from `[retraining]` in flightdeck.toml. "
    "The backtest replays a policy over the model's stored drift history."
)


def save(model: str, policy: RetrainingPolicy) -> None:
    """The Save button's callback: write the policy to flightdeck.toml, audited."""
    try:
        save_policy(settings.governance_path, services.store, me, model, policy)
    except FlightdeckError as exc:
        st.session_state["retraining.problem"] = (
            f"Save the policy of {escape_markdown(model)}: {escape_markdown(str(exc))}"
        )
        return
    st.session_state["retraining.flash"] = (
        f"Saved the retraining policy of {escape_markdown(model)}."
    )


def edited_policy(model: str, current: RetrainingPolicy) -> RetrainingPolicy | None:
    """Widgets for each setting, prefilled with ``current``; None while a value is invalid."""
    key = f"retraining.policy.{model}."
    left, middle, right = st.columns(3)
    schedule = left.text_input(
        "Schedule (cron, UTC)",
        current.schedule,
        key=key + "schedule",
        placeholder="off, or e.g. 0 3 * * 1",
        help="minute hour day month weekday; empty for no schedule",
    )
    drift = left.number_input(
        "Drift red for N batches (0: off)", 0, 100, current.drift_red_batches, key=key + "drift"
    )
    decay = middle.number_input(
        "Decay threshold (0: off)",
        0.0,
        value=current.decay_threshold,
        step=0.01,
        key=key + "decay",
        help="how much worse than the champion a labelled batch's primary metric may get",
    )
    cooldown = middle.number_input(
        "Cooldown (hours)", 0.0, value=current.cooldown_hours, step=1.0, key=key + "cooldown"
    )
    budget = right.number_input(
        "Budget (retrains per 7 days)", 0, 100, current.max_per_week, key=key + "budget"
    )
    promote_to = right.text_input("Propose for alias", current.promote_to, key=key + "alias")
    auto = right.toggle("Auto-approve (not for @champion)", current.auto_approve, key=key + "auto")
    values = {
        "schedule": schedule.strip(),
        "drift_red_batches": int(drift),
        "decay_threshold": float(decay),
        "cooldown_hours": float(cooldown),
        "max_per_week": int(budget),
        "promote_to": promote_to.strip(),
        "auto_approve": auto,
    }
    try:
        return parse_policy(values, RetrainingPolicy(), f'retraining.models."{model}"')
    except ConfigurationError as exc:
        st.error(escape_markdown(str(exc)), icon=":material/error:")
        return None


if models:
    policy_model = st.selectbox("Policy of", models, key="retraining.policy_model")
    current = services.governance.retraining_for(policy_model)
    may_edit = me.may(Action.ADMINISTER)
    if may_edit:
        policy = edited_policy(policy_model, current)
    else:
        policy = current
        summary = {
            "Schedule (cron, UTC)": current.schedule or "off",
            "Drift red for N batches": current.drift_red_batches or "off",
            "Decay threshold": current.decay_threshold or "off",
            "Cooldown (hours)": current.cooldown_hours,
            "Budget (per 7 days)": current.max_per_week,
            "Proposes for": f"@{current.promote_to}",
            "Auto-approve": "yes" if current.auto_approve else "no, a person approves",
        }
        st.dataframe(
            pd.DataFrame({"Setting": list(summary), "Value": [str(v) for v in summary.values()]}),
            hide_index=True,
        )
        st.caption(f"You are {role_phrase(me.role)}: changing a policy needs the admin role.")
    try:
        history = cache.monitoring_runs(settings, policy_model)
    except FlightdeckError as exc:
        st.warning(
            f"No backtest: the drift history of {escape_markdown(policy_model)} could not be "
            f"read. {escape_markdown(str(exc))}",
            icon=":material/sync_problem:",
        )
        history = None
    if policy is not None and history == []:
        st.info(
            f"No drift history for {escape_markdown(policy_model)} yet: the backtest needs "
            "monitoring runs."
        )
    elif policy is not None and history:
        try:
            baseline = decay_baseline(services, policy_model, policy)
        except FlightdeckError:
            baseline = None
        decisions = backtest(
            policy, policy_model, history, services.governance.drift, baseline=baseline
        )
        fired = sum(d.fired for d in decisions)
        held_back = len(decisions) - fired
        st.markdown(
            f"**Backtest**{' of these settings' if policy != current else ''} over "
            f"{len(history)} batches ({min(b.window_start for b in history):%Y-%m-%d} to "
            f"{max(b.window_end for b in history):%Y-%m-%d}): would have retrained {fired} "
            f"time{'s' if fired != 1 else ''}"
            + (f", and been held back {held_back} times" if held_back else "")
            + "."
        )
        if decisions:
            st.dataframe(
                pd.DataFrame(
                    [
                        {"When": d.at, "Trigger": d.trigger, "Outcome": d.outcome, "Why": d.reason}
                        for d in decisions
                    ]
                ),
                hide_index=True,
            )
    if may_edit and policy is not None:
        st.button(
            "Save policy",
            icon=":material/save:",
            disabled=policy == current,
            on_click=save,
            args=(policy_model, policy),
            help="Writes flightdeck.toml; the scheduler uses it from its next pass.",
        )

st.markdown("**Scheduler decisions**")
try:
    made = recent_decisions(services)
except FlightdeckError as exc:
    st.warning(escape_markdown(str(exc)), icon=":material/sync_problem:")
    made = []
if not made:
    st.caption("None yet: the scheduler (started by `make run`) records each decision here.")
else:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "When": d.at,
                    "Model": d.model,
                    "Trigger": d.trigger,
                    "Outcome": d.outcome,
                    "Why": d.reason,
                }
                for d in made
            ]
        ),
        hide_index=True,
    )
