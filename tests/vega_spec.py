"""Read an Altair chart back as its Vega-Lite spec: each named layer's records."""

from __future__ import annotations

import json
from typing import Any

import altair as alt


def spec(chart: alt.TopLevelMixin) -> dict[str, Any]:
    return dict(chart.to_dict())


def layers(chart: alt.TopLevelMixin) -> dict[str, list[dict[str, Any]]]:
    """Layer name → the records it draws (a single chart is its own one layer)."""
    top = spec(chart)
    found: dict[str, list[dict[str, Any]]] = {}
    for part in top.get("layer", [top]):
        data = part.get("data") or top.get("data", {})  # Altair hoists shared data
        values = data["values"] if "values" in data else top["datasets"][data["name"]]
        found[part["name"]] = values
    return found


def column(chart: alt.TopLevelMixin, name: str, field: str) -> list[Any]:
    """One field of one layer's records, in order."""
    return [row[field] for row in layers(chart)[name]]


def title(chart: alt.TopLevelMixin) -> str:
    return str(spec(chart)["title"]["text"])


def shown_layers(element: Any) -> dict[str, list[dict[str, Any]]]:
    """Layer name → records, from a chart as Streamlit sent it (an AppTest ``vega_lite_chart``):
    the spec is JSON and each dataset an Arrow table beside it."""
    import pyarrow as pa

    top = json.loads(element.proto.spec)
    tables = {
        named.name: pa.ipc.open_stream(named.data.data).read_all().to_pylist()
        for named in element.proto.datasets
    }
    found: dict[str, list[dict[str, Any]]] = {}
    for part in top.get("layer", [top]):
        data = part.get("data") or top.get("data", {})
        found[part["name"]] = data["values"] if "values" in data else tables[data["name"]]
    return found
