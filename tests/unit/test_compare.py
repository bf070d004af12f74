from __future__ import annotations

import math
import sys
from datetime import UTC, datetime

import pytest

from services.core.errors import NotFound, ServerUnreachable
from services.core.links import CompareView
from services.core.records import ModelVersionSummary, Run
from services.experiments import chart_data, compare, version_metrics

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def run(
    run_id: str,
    name: str = "",
    metrics: dict[str, float] | None = None,
    params: dict[str, str] | None = None,
    experiment_id: str = "1",
    status: str = "FINISHED",
    deleted: bool = False,
) -> Run:
    return Run(
        run_id=run_id.ljust(32, "0"),
        experiment_id=experiment_id,
        name=name,
        status=status,
        start_time=T0,
        end_time=None if status == "RUNNING" else T0,
        user="alice",
        deleted=deleted,
        metrics=metrics or {},
        params=params or {},
    )


def version(name: str, number: int, run_id: str, days: int = 0) -> ModelVersionSummary:
    return ModelVersionSummary(
        name, number, run_id.ljust(32, "0") if run_id else "", T0.replace(day=1 + days), "READY", ""
    )


def lookup(*runs: Run):  # type: ignore[no-untyped-def]
    by_id = {r.run_id: r for r in runs}

    def fetch(run_id: str) -> Run:
        if run_id not in by_id:
            raise NotFound(f"no run {run_id}")
        return by_id[run_id]

    return fetch


# -- loading --------------------------------------------------------------------------------------


def test_unknown_and_deleted_runs_are_reported_and_the_rest_still_load() -> None:
    a, b, gone = run("a"), run("b"), run("c", deleted=True)
    loaded = compare.load_runs([a.run_id, "f" * 32, b.run_id, gone.run_id], lookup(a, b, gone))
    assert [r.run_id for r in loaded.runs] == [a.run_id, b.run_id]
    assert loaded.missing == ("f" * 32, gone.run_id)


def test_repeated_and_blank_ids_in_a_link_are_read_once() -> None:
    a, b = run("a"), run("b")
    loaded = compare.load_runs([a.run_id, " ", a.run_id, b.run_id], lookup(a, b))
    assert [r.run_id for r in loaded.runs] == [a.run_id, b.run_id]


def test_more_than_the_maximum_runs_are_cut_and_counted() -> None:
    runs = [run(f"{i:03d}") for i in range(compare.MAX_RUNS + 5)]
    loaded = compare.load_runs([r.run_id for r in runs], lookup(*runs))
    assert len(loaded.runs) == compare.MAX_RUNS
    assert loaded.truncated == 5


def test_progress_is_reported_after_each_run() -> None:
    a, b = run("a"), run("b")
    seen: list[tuple[int, int]] = []
    compare.load_runs([a.run_id, b.run_id], lookup(a, b), lambda d, t: seen.append((d, t)))
    assert seen == [(1, 2), (2, 2)]


def test_an_outage_while_loading_is_raised_not_reported_as_missing_runs() -> None:
    def down(run_id: str) -> Run:
        raise ServerUnreachable("down")

    with pytest.raises(ServerUnreachable):
        compare.load_runs(["a" * 32, "b" * 32], down)


# -- labels ---------------------------------------------------------------------------------------


def test_runs_with_the_same_name_get_distinct_labels() -> None:
    labels = compare.run_labels([run("aaaaaaaa1", "sweep"), run("bbbbbbbb2", "sweep")])
    assert sorted(labels.values()) == ["sweep (aaaaaaaa)", "sweep (bbbbbbbb)"]


def test_unnamed_runs_are_labelled_by_short_id() -> None:
    assert list(compare.run_labels([run("abcdef12", "")]).values()) == ["abcdef12"]


def test_a_run_named_like_a_fixed_column_cannot_shadow_it() -> None:
    labels = compare.run_labels([run("a", "Best run"), run("b", "Metric")])
    assert not set(labels.values()) & compare.FIXED_COLUMNS


def test_run_page_link_is_relative_to_the_compare_page() -> None:
    assert compare.run_page_link("ab" * 16) == f"run?run_id={'ab' * 16}"


# -- directions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "metric",
    ["train_loss", "val_log_loss", "eval_rmse", "MAE", "mse", "error_rate", "perplexity"],
)
def test_loss_and_error_metrics_are_better_lower(metric: str) -> None:
    assert compare.inferred_lower_is_better(metric)


@pytest.mark.parametrize("metric", ["eval_accuracy", "eval_f1", "eval_r2", "auc"])
def test_other_metrics_are_better_higher(metric: str) -> None:
    assert not compare.inferred_lower_is_better(metric)


def test_view_overrides_win_over_the_name() -> None:
    view = CompareView(higher_is_better=("train_loss",), lower_is_better=("eval_r2",))
    assert not compare.lower_is_better("train_loss", view)
    assert compare.lower_is_better("eval_r2", view)


def test_direction_choice_stores_only_metrics_that_differ_from_the_name() -> None:
    metrics = ["eval_accuracy", "eval_r2", "train_loss"]
    view = compare.with_directions(CompareView(), metrics, lower=["train_loss", "eval_r2"])
    assert view.lower_is_better == ("eval_r2",)
    assert view.higher_is_better == ()
    assert compare.lower_is_better_metrics(metrics, view) == ["eval_r2", "train_loss"]


def test_direction_choice_keeps_overrides_of_metrics_not_shown() -> None:
    view = CompareView(higher_is_better=("other_loss",))
    updated = compare.with_directions(view, ["train_loss"], lower=[])
    assert updated.higher_is_better == ("other_loss", "train_loss")


# -- params ---------------------------------------------------------------------------------------


def test_params_table_shows_only_differences_by_default() -> None:
    runs = [
        run("a", "A", params={"lr": "0.1", "seed": "7"}),
        run("b", "B", params={"lr": "0.3", "seed": "7"}),
    ]
    table = compare.params_table(runs)
    assert table["Param"].tolist() == ["lr"]
    assert table.columns.tolist() == ["Param", "A", "B"]
    assert compare.params_table(runs, only_differences=False)["Param"].tolist() == ["lr", "seed"]


def test_a_param_one_run_lacks_counts_as_a_difference() -> None:
    runs = [run("a", "A", params={"scaler": "standard"}), run("b", "B")]
    table = compare.params_table(runs)
    assert table["Param"].tolist() == ["scaler"]
    assert table.loc[0, "B"] is None


def test_runs_without_params_give_an_empty_table() -> None:
    assert compare.params_table([run("a"), run("b")]).empty


# -- metrics --------------------------------------------------------------------------------------


def test_best_metric_follows_the_direction() -> None:
    runs = [
        run("a", "A", {"train_loss": 0.2, "eval_accuracy": 0.9}),
        run("b", "B", {"train_loss": 0.1, "eval_accuracy": 0.8}),
    ]
    comparison = compare.compare_metrics(runs, CompareView())
    table = comparison.table.set_index("Metric")
    assert table.loc["train_loss", "Best run"] == "B"
    assert table.loc["eval_accuracy", "Best run"] == "A"
    assert table.loc["train_loss", "Better"] == "lower"


def test_overriding_the_direction_changes_the_best_run() -> None:
    runs = [run("a", "A", {"eval_r2": 0.5}), run("b", "B", {"eval_r2": 0.7})]
    view = CompareView(lower_is_better=("eval_r2",))
    assert compare.compare_metrics(runs, view).best["eval_r2"] == (runs[0].run_id,)


def test_nan_and_inf_never_win_and_do_not_crash() -> None:
    runs = [
        run("a", "A", {"loss": math.nan, "acc": math.inf}),
        run("b", "B", {"loss": 0.5, "acc": 0.7}),
        run("c", "C", {"loss": -math.inf}),
    ]
    best = compare.compare_metrics(runs, CompareView()).best
    assert best["loss"] == (runs[1].run_id,)
    assert best["acc"] == (runs[1].run_id,)


def test_a_metric_no_run_has_a_finite_value_of_has_no_best() -> None:
    runs = [run("a", "A", {"loss": math.nan}), run("b", "B")]
    comparison = compare.compare_metrics(runs, CompareView())
    assert comparison.best["loss"] == ()
    assert comparison.table.loc[0, "Best run"] == ""


def test_ties_mark_every_best_run() -> None:
    runs = [run("a", "A", {"acc": 0.9}), run("b", "B", {"acc": 0.9}), run("c", "C", {"acc": 0.1})]
    comparison = compare.compare_metrics(runs, CompareView())
    mask = compare.best_cell_mask(comparison, runs)
    assert mask.loc[0, ["A", "B", "C"]].tolist() == [True, True, False]
    assert comparison.table.loc[0, "Best run"] == "2 runs tie"


def test_running_failed_and_metricless_runs_compare_without_error() -> None:
    runs = [run("a", "A", status="RUNNING"), run("b", "B", status="FAILED", metrics={"x": 1.0})]
    comparison = compare.compare_metrics(runs, CompareView())
    assert math.isnan(comparison.table.loc[0, "A"])
    assert compare.runs_overview(runs)["Status"].tolist() == ["RUNNING", "FAILED"]


# -- chart data -----------------------------------------------------------------------------------


def test_numeric_params_become_numbers_and_others_stay_text() -> None:
    runs = [
        run("a", params={"lr": "0.1", "depth": "None", "kind": "gbm"}, metrics={"m": 1.0}),
        run("b", params={"lr": "0.3", "depth": "3", "kind": "rf"}),
    ]
    frame = chart_data.chart_frame(runs)
    assert frame["params.lr"].tolist() == [0.1, 0.3]
    assert not chart_data.is_numeric_column(frame, "params.depth")
    assert not chart_data.is_numeric_column(frame, "params.kind")
    assert chart_data.is_numeric_column(frame, "metrics.m")
    assert math.isnan(frame.loc[1, "metrics.m"])


def test_missing_numeric_param_is_nan_and_the_column_stays_numeric() -> None:
    frame = chart_data.chart_frame([run("a", params={"lr": "0.1"}), run("b")])
    assert chart_data.is_numeric_column(frame, "params.lr")
    assert math.isnan(frame.loc[1, "params.lr"])


def test_an_infinite_param_is_text_not_a_number() -> None:
    assert chart_data.as_numbers_if_possible(["inf", "1"]).dtype == object


def test_chart_choices_default_to_varying_params_and_the_history_metric() -> None:
    runs = [
        run("a", params={"lr": "0.1", "seed": "7"}, metrics={"acc": 0.9, "loss": 0.2}),
        run("b", params={"lr": "0.3", "seed": "7"}, metrics={"acc": 0.8, "loss": 0.3}),
    ]
    choices = chart_data.chart_choices(CompareView(metrics=("loss",)), chart_data.chart_frame(runs))
    assert choices.parallel_params == ("params.lr",)
    assert choices.parallel_metric == "metrics.loss"
    assert choices.scatter_x == "params.lr"
    assert choices.scatter_y == "metrics.loss"
    assert choices.box_group == "params.lr"


def test_stale_chart_choices_in_a_link_fall_back_to_defaults() -> None:
    runs = [run("a", params={"lr": "0.1"}, metrics={"acc": 0.9}), run("b", params={"lr": "1"})]
    view = CompareView(parallel_metric="gone", scatter_x="params.gone", box_group="params.gone")
    choices = chart_data.chart_choices(view, chart_data.chart_frame(runs))
    assert choices.parallel_metric == "metrics.acc"
    assert choices.scatter_x == "params.lr"
    assert choices.box_group == "params.lr"


def test_valid_chart_choices_in_a_link_are_kept() -> None:
    runs = [run("a", params={"lr": "0.1"}, metrics={"acc": 0.9, "f1": 0.8}), run("b")]
    view = CompareView(parallel_metric="f1", scatter_x="metrics.acc", scatter_y="params.lr")
    choices = chart_data.chart_choices(view, chart_data.chart_frame(runs))
    assert (choices.parallel_metric, choices.scatter_x, choices.scatter_y) == (
        "metrics.f1",
        "metrics.acc",
        "params.lr",
    )


def test_runs_without_params_or_metrics_give_empty_choices() -> None:
    choices = chart_data.chart_choices(CompareView(), chart_data.chart_frame([run("a"), run("b")]))
    assert choices == chart_data.ChartChoices("", (), "", "", "", "")


def test_keeping_the_shown_default_leaves_the_link_short() -> None:
    assert compare.keep_implicit("", "metrics.a", "metrics.a") == ""
    assert compare.keep_implicit("", "metrics.b", "metrics.a") == "metrics.b"


def test_suggested_history_metrics_are_shared_losses_first() -> None:
    runs = [
        run("a", metrics={"acc": 1.0, "train_loss": 1.0, "only_a": 1.0}),
        run("b", metrics={"acc": 1.0, "train_loss": 1.0}),
    ]
    assert compare.suggested_history_metrics(runs) == ["train_loss", "acc"]


# -- model versions -------------------------------------------------------------------------------


def test_models_are_found_through_their_versions_source_experiments() -> None:
    wine, other = run("w", experiment_id="1"), run("o", experiment_id="2")
    versions = [
        version("wine-model", 1, "w"),
        version("other-model", 1, "o"),
        version("orphan", 1, "deadbeef"),
        version("no-run", 1, ""),
    ]
    found = version_metrics.models_for_experiments(versions, {"1"}, lookup(wine, other))
    assert found == ["wine-model"]


def test_the_model_with_most_versions_from_the_experiments_comes_first() -> None:
    wine = run("w", experiment_id="1")
    versions = [
        version("a-copy", 1, "w"),
        *(version("wine-model", n, "w") for n in (1, 2, 3)),
    ]
    found = version_metrics.models_for_experiments(versions, {"1"}, lookup(wine))
    assert found == ["wine-model", "a-copy"]


def test_version_trend_reads_each_source_run_and_marks_alias_holders() -> None:
    r1, r3 = run("r1", metrics={"acc": 0.7}), run("r3", metrics={"acc": 0.9})
    versions = [version("m", 3, "r3"), version("m", 1, "r1"), version("m", 2, "gone")]
    trend = version_metrics.version_trend(
        versions, [r1, r3], "acc", {"champion": 3, "challenger": 3}
    )
    assert [(p.version, p.value) for p in trend] == [(1, 0.7), (2, None), (3, 0.9)]
    assert trend[2].aliases == ("challenger", "champion")
    assert version_metrics.version_source_run_ids(versions) == [
        r1.run_id,
        run("gone").run_id,
        r3.run_id,
    ]


def test_trend_metric_prefers_a_wanted_metric_every_source_run_logged() -> None:
    sources = [run("a", metrics={"acc": 1, "loss": 1}), run("b", metrics={"acc": 1})]
    assert version_metrics.trend_metric_default(sources, ["loss", "acc"]) == "acc"
    assert version_metrics.trend_metric_default(sources, []) == "acc"
    assert version_metrics.trend_metric_default([], ["acc"]) == ""


def test_mlflows_stored_infinity_never_wins_a_higher_is_better_metric() -> None:
    runs = [run("a", "A", {"acc": sys.float_info.max}), run("b", "B", {"acc": 0.5})]
    assert compare.compare_metrics(runs, CompareView()).best["acc"] == (runs[1].run_id,)
