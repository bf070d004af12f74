"""The small core every domain builds on: settings, the store, typed records, errors,
links, the MLflow gateway and the composition root (:mod:`services.core.wiring`)."""
