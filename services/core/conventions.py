"""Flightdeck's conventions in MLflow, each defined once: alias and stage names, tag keys,
metric prefixes, artifact paths and experiment names (see DESIGN.md)."""

CHAMPION = "champion"
"""The version that serves."""
CHALLENGER = "challenger"
"""The version proposed to replace the champion."""

PRODUCTION_STAGE = "Production"
"""The legacy stage that serves, on servers that still promote by stage."""
SERVING_STAGES = ("Staging", PRODUCTION_STAGE)
"""Legacy stages that hold one version at a time: moving a version in archives the others."""
LEGACY_STAGES = (*SERVING_STAGES, "Archived")
"""MLflow's legacy stages a version can be moved to."""
PRODUCTION_TARGETS = (CHAMPION, PRODUCTION_STAGE)
"""Targets that always need a person's approval: a policy may never auto-approve into them."""

TRIGGER_TAG = "flightdeck.trigger"
"""Why the run trained: manual, schedule, drift or decay."""
JOB_ID_TAG = "flightdeck.job_id"
"""The retraining job that ran it."""
REQUESTED_BY_TAG = "flightdeck.requested_by"
"""Who, or which policy, asked for it."""
CAUSE_RUN_ID_TAG = "flightdeck.cause_run_id"
"""The monitoring run that caused it, for drift and decay."""
POLICY_TAG = "flightdeck.policy"
"""The retraining policy that started it."""
FAILURE_TAG = "flightdeck.failure"
"""Why a run failed."""
COMPARED_WITH_TAG = "flightdeck.compared_with_version"
"""The champion version the run's ``champion_eval_*`` metrics were measured on."""
CHAMPION_METRIC_PREFIX = "champion_"
"""``champion_eval_f1``: the champion's score on the run's own held-out set."""
COMPARISON_ARTIFACT = "evaluation/comparison.json"
"""Both versions' held-out metrics side by side."""
TRAINING_PROJECT_TAG = "flightdeck.training_project"
"""On a registered model: the demo project whose pipeline retrains it (``jobs.train``)."""

SYSTEM_TAG_PREFIXES = ("mlflow.", "flightdeck.")
"""Tags MLflow and Flightdeck set for themselves, hidden from tag lists."""
EVAL_PREFIX = "eval_"
"""Evaluation metrics on a held-out set (see DESIGN.md), logged by training runs and by the
monitoring runs of labelled batches; listed before any other metric."""

MONITORING_EXPERIMENT = "flightdeck-monitoring"
"""The experiment holding one monitoring run per batch."""
REFERENCE_PATH = "reference/reference.parquet"
"""Where a training run logs its reference sample."""
MODEL_TAG = "flightdeck.model"
"""On a monitoring run: the registered model it monitors."""
VERSION_TAG = "flightdeck.version"
"""On a monitoring run: the version its reference sample came from."""
ALIAS_TAG = "flightdeck.alias"
"""On a monitoring run: the alias that pointed at that version."""
WINDOW_START_TAG = "flightdeck.window_start"
WINDOW_END_TAG = "flightdeck.window_end"
"""On a monitoring run: the batch's time window (ISO 8601, UTC)."""
COLUMN_KEYS_TAG = "flightdeck.column_keys"
"""JSON {metric suffix: column} for columns whose name MLflow would not take as a metric key."""
BATCH_TAG = "flightdeck.batch"
"""On a scheduled monitoring run: the batch file's name."""

TAG_REQUEST_ID = "flightdeck.request_id"
TAG_REQUESTED_BY = REQUESTED_BY_TAG
TAG_APPROVED_BY = "flightdeck.approved_by"
TAG_PROMOTED_AT = "flightdeck.promoted_at"
TAG_PROMOTED_TO = "flightdeck.promoted_to"
"""Mirror tags on a promoted version, so MLflow's own UI shows the decision."""

DESCRIPTION_TAG = "mlflow.note.content"
RUN_NAME_TAG = "mlflow.runName"
USER_TAG = "mlflow.user"
"""MLflow's own tags for a description, a run's name and who ran it."""
