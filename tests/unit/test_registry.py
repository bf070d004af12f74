"""The registry pages' pure logic: model and version tables, comparisons, signatures, the chart."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pandas as pd
import pytest

from services.core.records import (
    CURRENT_HOLDER,
    AliasMove,
    ModelSignature,
    ModelVersionSummary,
    RegisteredModel,
    Run,
    SignatureColumn,
)
from services.experiments import charts, registry

T0 = datetime(2026, 11, 1, tzinfo=UTC)
EVIL = "<b>x</b><img src=x onerror=alert(1)>"


def model(name: str, **kwargs: object) -> RegisteredModel:
    return RegisteredModel(name=name, description=f"about {name}", **kwargs)  # type: ignore[arg-type]


def version(number: int, run_id: str = "", **kwargs: object) -> ModelVersionSummary:
    return ModelVersionSummary(
        "m",
        number,
        run_id,
        T0.replace(day=number),
        "READY",
        "",
        **kwargs,  # type: ignore[arg-type]
    )


def run(
    run_id: str, name: str, metrics: dict[str, float], params: dict[str, str] | None = None
) -> Run:
    return Run(run_id, "1", name, "FINISHED", T0, T0, "u", False, metrics, params or {})


def signature(
    *inputs: SignatureColumn, outputs: tuple[SignatureColumn, ...] = ()
) -> ModelSignature:
    return ModelSignature(tuple(inputs), outputs)


# -- the models list ------------------------------------------------------------------------------


def test_models_table_filters_by_name_ignoring_case_and_lists_aliases_in_version_order() -> None:
    models = [
        model("Fraud model/v2 — ünï", aliases={"challenger": 4, "champion": 3}, latest_version=4),
        model("wine-classifier", tags={"team": "quality", "flightdeck.demo_seed": "complete"}),
        model("churn"),
    ]

    table = registry.models_table(models, "  FRAUD ")

    assert list(table.columns) == list(registry.MODEL_COLUMNS)
    assert table[registry.MODEL_COLUMN].tolist() == ["Fraud model/v2 — ünï"]
    assert table.loc[0, "Aliases"] == "champion → v3, challenger → v4"
    assert table.loc[0, "Latest version"] == 4
    assert registry.models_table(models, "ÜNÏ")[registry.MODEL_COLUMN].tolist() == [
        "Fraud model/v2 — ünï"
    ]


def test_models_table_without_text_lists_every_model_by_name_with_user_tags_only() -> None:
    models = [model("b", tags={"z": "1", "a": "2", "mlflow.x": "y"}), model("A")]

    table = registry.models_table(models, "")

    assert table[registry.MODEL_COLUMN].tolist() == ["A", "b"]
    assert table.loc[1, "Tags"] == "a=2, z=1"
    assert pd.isna(table.loc[0, "Latest version"])


def test_models_table_with_no_match_is_empty_but_keeps_its_columns() -> None:
    table = registry.models_table([model("a")], "zzz")
    assert table.empty
    assert list(table.columns) == list(registry.MODEL_COLUMNS)


def test_selected_model_reads_the_name_of_the_selected_row() -> None:
    table = registry.models_table([model("b"), model("a")], "")
    assert registry.selected_model(table, [1]) == "b"
    assert registry.selected_model(table, []) is None


# -- versions -------------------------------------------------------------------------------------


def test_versions_table_is_newest_first_with_run_names_metrics_and_registry_aliases() -> None:
    versions = [version(1, "r1"), version(3, "r3", stage="Production"), version(2, "gone")]
    runs = {
        "r1": run("r1", "first", {"eval_f1": 0.5, "loss": 1.0}),
        "r3": run("r3", "third", {"eval_f1": 0.9}),
    }
    with_aliases = registry.with_aliases(versions, {"champion": 3, "challenger": 3})
    metrics = registry.key_metrics(runs.values())

    table = registry.versions_table(with_aliases, runs, metrics)

    assert metrics == ["eval_f1", "loss"]
    assert list(table.columns) == [
        "Version",
        "Created",
        "Source run",
        "Run ID",
        "eval_f1",
        "loss",
        "Aliases",
        "Stage",
        "Tags",
        "Status",
    ]
    assert table["Version"].tolist() == [3, 2, 1]
    assert table["Source run"].tolist() == ["third", "", "first"]
    assert table.loc[0, "Aliases"] == "challenger, champion"
    assert table.loc[0, "Stage"] == "Production"
    assert table.loc[2, "eval_f1"] == 0.5
    assert math.isnan(table.loc[1, "eval_f1"])
    assert math.isnan(table.loc[0, "loss"])


def test_key_metrics_put_eval_metrics_first_and_stop_at_the_limit() -> None:
    runs = [
        run("a", "a", {"loss": 1, "eval_rmse": 2, "accuracy": 3}),
        run("b", "b", {"eval_f1": 1}),
    ]
    assert registry.key_metrics(runs) == ["eval_f1", "eval_rmse", "accuracy", "loss"]
    assert registry.key_metrics(runs, limit=2) == ["eval_f1", "eval_rmse"]


def test_version_numbers_from_urls_accept_v_prefix_and_reject_junk() -> None:
    assert registry.version_number("3") == 3
    assert registry.version_number("v12") == 12
    assert registry.version_number("0") is None
    assert registry.version_number("x") is None
    assert registry.version_number(None) is None


def test_default_baseline_prefers_the_champion_then_the_previous_version() -> None:
    versions = [version(1), version(2), version(3), version(4)]
    assert registry.default_baseline(versions, 4, {"champion": 3}) == 3
    assert registry.default_baseline(versions, 3, {"champion": 3}) == 2
    assert registry.default_baseline(versions, 1, {}) == 2
    assert registry.default_baseline([version(1)], 1, {}) is None


def test_default_metric_prefers_the_url_then_the_primary_metric_tag_then_eval_metrics() -> None:
    runs = [run("a", "a", {"loss": 1, "eval_f1": 0.5, "eval_acc": 0.7})]
    tagged = model("m", tags={"primary_metric": "eval_f1"})
    assert registry.default_metric(tagged, runs, "loss") == "loss"
    assert registry.default_metric(tagged, runs, "missing") == "eval_f1"
    assert registry.default_metric(model("m"), runs) == "eval_acc"
    assert registry.default_metric(model("m"), []) == ""


def test_metric_points_skip_versions_whose_source_run_lacks_the_metric() -> None:
    versions = [version(2, "b"), version(1, "a"), version(3, "")]
    runs = {"a": run("a", "a", {"m": 1.0}), "b": run("b", "b", {})}
    assert registry.metric_points(versions, runs, "m") == [(1, 1.0)]


# -- comparing two versions -----------------------------------------------------------------------


def test_version_comparison_shows_differing_params_and_metric_deltas_b_minus_a() -> None:
    a = run("a", "a", {"eval_f1": 0.8, "loss": 0.5, "only_a": 1.0}, {"lr": "0.1", "depth": "3"})
    b = run("b", "b", {"eval_f1": 0.9, "loss": math.nan}, {"lr": "0.2", "depth": "3", "new": "x"})

    comparison = registry.version_comparison(a, b, labels=("v3", "v4"))

    assert comparison.params.columns.tolist() == ["Param", "v3", "v4"]
    assert comparison.params["Param"].tolist() == ["lr", "new"]
    assert pd.isna(comparison.params.set_index("Param").loc["new", "v3"])
    assert (comparison.differing_params, comparison.total_params) == (2, 3)
    metrics = comparison.metrics.set_index("Metric")
    assert metrics.index.tolist() == ["eval_f1", "loss", "only_a"]
    assert metrics.loc["eval_f1", registry.DELTA_COLUMN] == pytest.approx(0.1)
    assert math.isnan(metrics.loc["loss", registry.DELTA_COLUMN])
    assert math.isnan(metrics.loc["only_a", "v4"])
    assert math.isnan(metrics.loc["only_a", registry.DELTA_COLUMN])


def test_version_comparison_can_show_every_param() -> None:
    a = run("a", "a", {}, {"lr": "0.1", "depth": "3"})
    b = run("b", "b", {}, {"lr": "0.1", "depth": "3"})
    assert registry.version_comparison(a, b).params.empty
    everything = registry.version_comparison(a, b, only_differences=False)
    assert everything.params["Param"].tolist() == ["depth", "lr"]


# -- signatures -----------------------------------------------------------------------------------

X = SignatureColumn("x", "double")
Y = SignatureColumn("y", "long")
OUT = SignatureColumn("", "long")


def test_identical_signatures_are_compatible() -> None:
    check = registry.signature_comparison(
        signature(X, Y, outputs=(OUT,)), signature(X, Y, outputs=(OUT,))
    )
    assert check.compatible
    assert set(check.table["Status"]) == {registry.SAME}
    assert check.table["Side"].tolist() == ["Input", "Input", "Output"]


def test_b_may_add_an_optional_input_column() -> None:
    optional = SignatureColumn("z", "string", required=False)
    check = registry.signature_comparison(signature(X), signature(X, optional))
    assert check.compatible
    assert "“z”" in check.reason


def test_b_adding_a_required_input_column_is_incompatible() -> None:
    check = registry.signature_comparison(signature(X), signature(X, Y))
    assert not check.compatible
    assert "requires new input “y”" in check.reason


def test_b_missing_an_input_column_is_incompatible() -> None:
    check = registry.signature_comparison(signature(X, Y), signature(X), labels=("v3", "v4"))
    assert not check.compatible
    assert check.reason == "v4 lacks input “y”"
    row = check.table.set_index("Column").loc["y"]
    assert row["Status"] == registry.MISSING_IN_B


def test_a_changed_input_type_is_incompatible() -> None:
    check = registry.signature_comparison(signature(X), signature(SignatureColumn("x", "string")))
    assert not check.compatible
    assert "changes the type of “x”" in check.reason


def test_changed_outputs_are_listed_but_do_not_decide() -> None:
    check = registry.signature_comparison(
        signature(X, outputs=(OUT,)), signature(X, outputs=(SignatureColumn("", "double"),))
    )
    assert check.compatible
    outputs = check.table[check.table["Side"] == "Output"]
    assert outputs["Status"].tolist() == [registry.TYPE_CHANGED]


def test_no_signature_on_either_side_is_compatible_and_on_one_side_is_not() -> None:
    neither = registry.signature_comparison(None, None)
    assert neither.compatible
    assert neither.reason == "neither version has a signature"
    only_b = registry.signature_comparison(None, signature(X))
    assert not only_b.compatible
    assert only_b.reason.startswith("the baseline has no signature")
    only_a = registry.signature_comparison(signature(X), None)
    assert not only_a.compatible
    assert only_a.reason.startswith("the candidate has no signature")


def test_signature_table_names_unnamed_tensors_by_position() -> None:
    tensor = SignatureColumn("", "tensor(float64, [-1, 4])")
    table = registry.signature_table(signature(tensor, outputs=(OUT,)))
    assert table["Column"].tolist() == ["[0]", "[0]"]
    assert table["Side"].tolist() == ["Input", "Output"]


# -- alias moves and the chart --------------------------------------------------------------------


def test_alias_moves_from_versions_mark_each_current_holder() -> None:
    moves = registry.alias_moves_from_versions({"challenger": 4, "champion": 3}, T0)
    assert [(m.alias, m.version, m.reason, m.at) for m in moves] == [
        ("champion", 3, CURRENT_HOLDER, T0),
        ("challenger", 4, CURRENT_HOLDER, T0),
    ]


def test_version_chart_marks_each_alias_move_with_a_line_and_a_label() -> None:
    moves = [
        AliasMove(
            "champion", 3, 2, datetime(2026, 11, 20, 9, 30, tzinfo=UTC), "alice", "better f1", False
        ),
        AliasMove("challenger", None, 4, datetime(2026, 11, 21, tzinfo=UTC), "bob", "", True),
        *registry.alias_moves_from_versions({"champion": 3}, T0),
    ]
    figure = charts.version_metric_chart(
        [(1, 0.5), (2, 0.6), (3, 0.8), (4, math.nan)], "eval_f1", moves
    )

    lines = [shape.x0 for shape in figure.layout.shapes]
    assert sorted(lines) == [3, 4]
    marks = next(trace for trace in figure.data if trace.name == "Alias moves")
    labels = dict(zip(marks.x, marks.text, strict=True))
    assert "@champion (current)" in labels[3]
    assert "@champion 2026-11-20" in labels[3]
    assert labels[4] == "@challenger removed 2026-11-21"
    hovers = dict(zip(marks.x, marks.hovertext, strict=True))
    assert "moved from v2 to v3" in hovers[3]
    assert "by alice" in hovers[3]
    assert "outside Flightdeck" in hovers[4]
    line = figure.data[0]
    assert list(line.x) == [1, 2, 3]  # NaN left out
    assert list(figure.layout.xaxis.ticktext) == ["v1", "v2", "v3", "v4"]


def test_version_chart_escapes_untrusted_alias_actor_and_reason() -> None:
    move = AliasMove(EVIL, 1, None, T0, EVIL, EVIL, False)
    text = charts.version_metric_chart([(1, 1.0)], EVIL, [move]).to_json()
    assert "<img" not in text and "<b>x" not in text


def test_version_chart_without_values_or_moves_says_why() -> None:
    figure = charts.version_metric_chart([(1, math.nan)], "m", [])
    assert "No version" in figure.layout.annotations[0].text
