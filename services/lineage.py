"""The ``flightdeck.*`` tags a retraining run and its version carry, defined once.

Written by ``jobs.train``; read by the retraining loop, the gates and the pages.
"""

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
