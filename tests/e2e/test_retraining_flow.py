"""In the browser: "Retrain now" runs a real job, and its better version awaits approval."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlflow import MlflowClient
from playwright.sync_api import Page, expect

from services.core.conventions import JOB_ID_TAG
from services.core.processes import ServerProcess
from services.retraining.engines import JOBS_FOLDER
from tests.conftest import config_file_with_copy_gates, copy_demo_champion, follow_jobs_once
from tests.e2e.conftest import RETRAIN_MODEL, wait_until_ready
from tests.e2e.test_promotion_flow import VIEWPORT, act_as
from tests.e2e.test_screenshots import full_page_shot, output_dir


def paused_job(jobs_dir: Path, earlier: set[Path], timeout_s: float = 30.0) -> int:
    """Stop the one new local job's process group as soon as it starts (SIGSTOP), so the page
    can be seen showing it running however fast the training is; returns its pid.

    Jobs in ``earlier`` were started by other tests of the session and are left alone."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pid_files = [path for path in jobs_dir.glob("*/pid") if path not in earlier]
        if pid_files and pid_files[0].read_text().strip():
            pid = int(pid_files[0].read_text().split()[0])
            os.killpg(pid, signal.SIGSTOP)
            return pid
        time.sleep(0.02)
    raise AssertionError(f"no job started in {jobs_dir}")


@contextmanager
def retraining_step_of_the_control_loop(tracking_uri: str, config: Path) -> Iterator[list[str]]:
    """The control loop's retraining step every half second, in a thread, on the dashboard's
    store and gates; yields the problems it met. Not ``jobs.scheduler`` itself: its other steps
    would act on every model of the session's shared demo server (its policies would retrain
    the demo models)."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "FLIGHTDECK_CONFIG": str(config)}
    stop = threading.Event()
    problems: list[str] = []

    def loop() -> None:
        while not stop.wait(0.5):
            try:
                follow_jobs_once(env)
            except Exception as exc:
                problems.append(repr(exc))

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield problems
    finally:
        stop.set()
        thread.join(timeout=60)


def test_retrain_now_runs_a_job_and_proposes_the_better_version(
    page: Page,
    dashboard: ServerProcess,
    seeded_server: ServerProcess,
    isolated_data_dir: Path,
    tmp_path: Path,
) -> None:
    config = config_file_with_copy_gates(tmp_path, RETRAIN_MODEL)
    with retraining_step_of_the_control_loop(seeded_server.url, config) as problems:
        try:
            retrain_now_and_follow(page, dashboard, seeded_server, isolated_data_dir)
        finally:
            assert not problems, problems[:3]


def retrain_now_and_follow(
    page: Page, dashboard: ServerProcess, seeded_server: ServerProcess, isolated_data_dir: Path
) -> None:
    jobs_dir = isolated_data_dir / JOBS_FOLDER
    earlier = set(jobs_dir.glob("*/pid"))
    copy_demo_champion(seeded_server.url, RETRAIN_MODEL)

    page.set_viewport_size(VIEWPORT)  # type: ignore[arg-type]
    page.goto(f"{dashboard.url}/retraining?model={RETRAIN_MODEL}")
    wait_until_ready(page)
    act_as(page, "omar")
    page.get_by_role("button", name="Retrain now").click()
    pid = paused_job(jobs_dir, earlier)
    expect(page.get_by_text(f"Started retraining {RETRAIN_MODEL}")).to_be_visible(timeout=30_000)
    expect(page).to_have_url(re.compile(r"/retraining\?job=[0-9a-f]{32}"))
    job_id = page.url.rsplit("=", 1)[1]

    # The live panel follows the job: running, then (no reload) succeeded and judged.
    expect(page.get_by_text("running…")).to_be_visible(timeout=30_000)
    os.killpg(pid, signal.SIGCONT)
    outcome = page.get_by_test_id("stAlertContentInfo")
    expect(outcome.get_by_text("passed the gates and was proposed for @champion")).to_be_visible(
        timeout=120_000
    )
    expect(page.get_by_text("Compared with @champion (version 1)")).to_be_visible()
    expect(page.get_by_text(re.compile(r"eval_rmse 54\.\d+ → 53\.\d+"))).to_be_visible()
    expect(page.get_by_role("link", name="Version 2")).to_be_visible()
    full_page_shot(page, output_dir() / "retraining.png")

    version = MlflowClient(seeded_server.url).get_model_version(RETRAIN_MODEL, "2")
    assert version.tags[JOB_ID_TAG] == job_id

    page.get_by_role("link", name="Promotion request").click()
    wait_until_ready(page)
    expect(page.get_by_role("heading", name=re.compile(f"^{RETRAIN_MODEL} v2"))).to_be_visible(
        timeout=30_000
    )
    expect(page.get_by_text(re.compile(r"pending · promotion requested by omar"))).to_be_visible()
