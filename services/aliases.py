"""The registry aliases Flightdeck's conventions use, defined once."""

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
