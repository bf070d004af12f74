"""In the browser: an operator requests a promotion, an approver in another browser approves."""

from __future__ import annotations

import re

from mlflow import MlflowClient
from playwright.sync_api import Browser, Page, expect

from jobs.seed_demo import PROJECTS
from services.core.processes import ServerProcess
from tests.e2e.conftest import wait_until_ready
from tests.e2e.test_screenshots import full_page_shot, output_dir

VIEWPORT = {"width": 1400, "height": 1000}


def copy_demo_model(client: MlflowClient, name: str) -> None:
    """A new model from the demo's champion and challenger, the better one as version 2.

    The demo's own models stay as they are for the other browser tests.
    """
    demo = PROJECTS[0].model
    versions = [client.get_model_version_by_alias(demo, a) for a in ("champion", "challenger")]
    f1 = {v.version: client.get_run(v.run_id).data.metrics["eval_f1"] for v in versions}
    client.create_registered_model(name)
    for version in sorted(versions, key=lambda v: f1[v.version]):
        model_id = version.source.removeprefix("models:/")  # MLflow 3: a logged model
        client.create_model_version(name, version.source, version.run_id, model_id=model_id)
    client.set_registered_model_alias(name, "champion", "1")


def act_as(page: Page, user: str) -> None:
    """Pick a demo user in development mode's sidebar."""
    box = page.get_by_role("combobox", name="Acting as")
    box.scroll_into_view_if_needed()
    box.click()
    page.keyboard.type(user)  # filter the list, so the option shows wherever the box sits
    page.get_by_role("option", name=user, exact=True).click()
    wait_until_ready(page)


def test_operator_requests_approver_approves_alias_moves_and_both_show(
    page: Page,
    browser: Browser,
    dashboard: ServerProcess,
    seeded_server: ServerProcess,
    unique_name: str,
) -> None:
    client = MlflowClient(seeded_server.url)
    name = f"cultivar-candidate-{unique_name[-8:]}"  # no "wine": other tests search for it
    copy_demo_model(client, name)

    page.set_viewport_size(VIEWPORT)  # type: ignore[arg-type]
    page.goto(f"{dashboard.url}/promotions?model={name}&version=2&target=champion")
    wait_until_ready(page)
    act_as(page, "omar")
    page.get_by_label("Reason").fill("f1 0.80 → 0.85 on the same holdout")
    page.get_by_label("Rollback plan").fill("point champion back at v1")
    page.get_by_role("button", name="Request promotion").click()
    wait_until_ready(page)
    expect(page.get_by_text("Request: done")).to_be_visible(timeout=30_000)
    expect(page).to_have_url(re.compile(r"/promotions\?request=[0-9a-f]{32}"))
    expect(page.get_by_role("heading", name=re.compile(f"^{name} v2"))).to_be_visible()
    decision_url = page.url

    approver = browser.new_context(viewport=VIEWPORT).new_page()  # type: ignore[arg-type]
    approver.goto(decision_url)
    wait_until_ready(approver)
    act_as(approver, "ben")
    expect(approver.get_by_text("requested by omar")).to_be_visible(timeout=30_000)
    expect(approver.locator("[role=gridcell]").first).to_be_attached(timeout=30_000)
    full_page_shot(approver, output_dir() / "decision.png")
    approver.get_by_label("Comment").fill("Looks good")
    approver.get_by_role("button", name="Approve and promote").click()
    wait_until_ready(approver)
    expect(approver.get_by_text("Approve: done")).to_be_visible(timeout=30_000)
    expect(approver.get_by_text(re.compile(r"^ben approved"))).to_be_visible()

    assert client.get_model_version_by_alias(name, "champion").version == "2"

    approver.goto(f"{dashboard.url}/model?name={name}")
    wait_until_ready(approver)
    expect(approver.get_by_text("Alias history")).to_be_visible(timeout=30_000)
    for person in ("omar", "ben"):
        cell = approver.locator("[role=gridcell]").filter(has_text=person)
        expect(cell.first).to_be_attached(timeout=30_000)
    full_page_shot(approver, output_dir() / "model.png")
    approver.context.close()
