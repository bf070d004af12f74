"""The registry aliases Flightdeck's conventions use, defined once."""

CHAMPION = "champion"
"""The version that serves."""
CHALLENGER = "challenger"
"""The version proposed to replace the champion."""
