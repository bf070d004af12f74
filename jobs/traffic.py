"""Demo traffic: drop a new batch of a model's inputs where the control loop monitors them.

``python -m jobs.traffic --model wine-classifier [--shift 1.5] [--rows 200]`` samples rows of
the reference sample of the version ``@champion`` points at, moves every numeric column by
``--shift`` standard deviations (0 for no drift), and writes them as a Parquet file named by
the time into ``<data dir>/traffic/<model>/``, the folder the shipped ``flightdeck.toml``
names as ``wine-classifier``'s source. The control loop (``make run`` starts it) monitors the
file on its next pass.

Exit status: 0 with the file's path printed; 1 when MLflow cannot be read; 2 when the model has
no reference sample.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from services.core.conventions import CHAMPION
from services.core.errors import DriftError, FlightdeckError
from services.core.gateway import TrackingGateway
from services.core.settings import Settings, load_settings
from services.monitoring.runs import reference_for

TRAFFIC_FOLDER = "traffic"


def traffic_folder(settings: Settings, model: str) -> Path:
    """Where the demo drops ``model``'s batches."""
    return settings.data_dir / TRAFFIC_FOLDER / model


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings()
    try:
        _version, reference = reference_for(TrackingGateway(settings), args.model, CHAMPION)
    except DriftError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except FlightdeckError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    rng = np.random.default_rng()
    batch = reference.sample(args.rows, replace=True, random_state=rng.integers(2**31))
    batch = batch.reset_index(drop=True)
    for column in batch.select_dtypes("number").columns:
        if column != "target":
            batch[column] = batch[column] + args.shift * reference[column].std()
    folder = traffic_folder(settings, args.model)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{datetime.now(UTC):%Y-%m-%dT%H%M%S%fZ}.parquet"
    batch.to_parquet(path, index=False)
    print(path)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jobs.traffic", description=__doc__)
    parser.add_argument("--model", default="wine-classifier")
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument(
        "--shift", type=float, default=0.0, help="standard deviations added to numeric columns"
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
