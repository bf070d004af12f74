"""Data drift: Evidently reports stored in MLflow, their charts, the on-demand check
and the control loop's scheduled monitoring."""
