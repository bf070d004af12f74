"""AppTest: the Retraining page starts a real local job, follows it, and shows its outcome."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from services.core.settings import PROJECT_ROOT
from services.governance.config import load_governance
from tests.conftest import config_file_with_copy_gates, follow_jobs_once
from tests.hostile import shown
from tests.integration.conftest import app_as

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_app")]


def retraining_page(user: str, **query: str) -> AppTest:
    """A new session as ``user`` on the Retraining page."""
    return app_as(user, "pages/retraining.py", **query)


def retrain_button(at: AppTest):  # type: ignore[no-untyped-def]
    return next(b for b in at.button if b.label == "Retrain now")


def test_an_operator_retrains_and_the_better_version_is_proposed(
    champion_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_file_with_copy_gates(tmp_path, champion_model)
    monkeypatch.setenv("FLIGHTDECK_CONFIG", str(config))
    at = retraining_page("omar", model=champion_model)
    assert at.selectbox(key="retraining.model").value == champion_model
    retrain_button(at).click().run()
    assert not at.exception, at.exception
    assert any("Started retraining" in s.value for s in at.success)
    job_id = at.query_params["job"]

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        follow_jobs_once(os.environ)
        at.run()
        outcomes = [shown(i.value) for i in at.info if "proposed" in i.value]
        if outcomes:
            break
        time.sleep(1)
    assert outcomes and "passed the gates and was proposed for @champion" in outcomes[0]
    links = {link.label: link for link in at.get("page_link")}
    assert "Promotion request" in links
    assert "Version 2" in links
    assert next(s for s in at.selectbox if s.label == "Job").value == job_id
    jobs_table = at.dataframe[0].value
    assert (jobs_table["Model"] == champion_model).sum() == 1
    assert jobs_table.loc[jobs_table["Model"] == champion_model, "Status"].item() == "succeeded"


def test_a_viewer_sees_why_they_cannot_retrain(champion_model: str) -> None:
    at = retraining_page("vic", model=champion_model)
    assert retrain_button(at).disabled
    assert any("needs the operator role" in i.value for i in at.info)


def test_the_policies_section_backtests_the_demo_drift_history(seeded_server: object) -> None:
    at = retraining_page("vic")
    at.selectbox(key="retraining.policy_model").set_value("wine-classifier").run()
    assert not at.exception, at.exception
    summary = next(m.value for m in at.markdown if m.value.startswith("**Backtest**"))
    assert "over 30 batches" in summary
    assert "would have retrained 1 time" in summary
    backtest = next(
        d.value
        for d in at.dataframe
        if list(d.value.columns) == ["When", "Trigger", "Outcome", "Why"]
    )
    assert list(backtest["Trigger"]) == ["drift"]
    assert "3 batches in a row" in backtest["Why"].iloc[0]


def test_an_admin_backtests_an_edited_policy_then_saves_it(
    seeded_server: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "flightdeck.toml"
    config.write_text((PROJECT_ROOT / "flightdeck.toml").read_text(encoding="utf-8"))
    monkeypatch.setenv("FLIGHTDECK_CONFIG", str(config))
    at = retraining_page("ada")
    at.selectbox(key="retraining.policy_model").set_value("diabetes-regressor").run()
    assert not at.exception, at.exception
    save = next(b for b in at.button if b.label == "Save policy")
    assert save.disabled  # nothing changed yet

    at.number_input(key="retraining.policy.diabetes-regressor.drift").set_value(2).run()
    summary = next(m.value for m in at.markdown if m.value.startswith("**Backtest**"))
    assert summary.startswith("**Backtest** of these settings")
    assert "would have retrained 2 times" in summary  # the saved policy (off) retrains 0 times

    at.text_input(key="retraining.policy.diabetes-regressor.schedule").input("every day").run()
    assert any("five fields" in e.value for e in at.error)  # invalid: no backtest, no save
    assert not any(b.label == "Save policy" for b in at.button)

    at.text_input(key="retraining.policy.diabetes-regressor.schedule").input("").run()
    next(b for b in at.button if b.label == "Save policy").click().run()
    assert not at.exception, at.exception
    assert any("Saved the retraining policy" in s.value for s in at.success)
    saved = load_governance(config).retraining_for("diabetes-regressor")
    assert saved.drift_red_batches == 2
    assert "# Retraining policies" in config.read_text()  # the file keeps its comments


def test_a_viewer_sees_policies_but_cannot_edit_them(seeded_server: object) -> None:
    at = retraining_page("vic")
    assert not any(b.label == "Save policy" for b in at.button)
    assert any("needs the admin role" in c.value for c in at.caption)
