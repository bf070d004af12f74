"""Retraining: job records and the engines that run them (``local`` now; Prefect, Airflow later).

:mod:`services.retraining.base` is the interface every engine implements,
:mod:`services.retraining.local` the default engine (a detached subprocess per job), and
:mod:`services.retraining.jobs` the service the pages call (permission, audit, per-model lock).
"""
