"""Two admins editing retraining policies at once, in two real processes on one store and one
``flightdeck.toml``: neither loses the other's edits, and the file stays valid."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.core.settings import PROJECT_ROOT
from services.core.store import Store
from services.governance import audit
from services.governance.config import RetrainingPolicy, load_governance

pytestmark = pytest.mark.integration

EDITS = 40
"""Saves per admin: enough that unlocked read-modify-writes interleave every time."""
FIRST_COOLDOWN = 1000.0
"""Edit ``i`` sets ``cooldown_hours = FIRST_COOLDOWN + i``: never the default, always new."""

ADMIN_SCRIPT = """
import sys, time
from pathlib import Path
from services.governance.auth import Identity
from services.governance.config import RetrainingPolicy
from services.retraining.policy_config import save_policy
from services.core.store import open_store

config, url, model, admin, go, edits, first = sys.argv[1:8]
store = open_store(url)
while not Path(go).exists():  # both admins start together
    time.sleep(0.005)
for i in range(int(edits)):
    policy = RetrainingPolicy(drift_red_batches=i % 5 + 1, cooldown_hours=float(first) + i)
    save_policy(Path(config), store, Identity(admin, True, "admin"), model, policy)
"""


def test_two_admins_saving_two_models_at_once_lose_neither_edit(
    tmp_path: Path, store: Store
) -> None:
    config = tmp_path / "flightdeck.toml"
    config.write_text(
        '# roles and more\n[roles]\nadmin = ["ada", "abe"]\n\n[retraining.default]\n'
        "max_per_week = 3\n",
        encoding="utf-8",
    )
    go = tmp_path / "go"
    admins = {"wine": "ada", "churn": "abe"}
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                ADMIN_SCRIPT,
                str(config),
                str(store.engine.url),
                model,
                admin,
                str(go),
                str(EDITS),
                str(FIRST_COOLDOWN),
            ],
            cwd=PROJECT_ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for model, admin in admins.items()
    ]
    time.sleep(3)  # both have imported and opened the store
    go.touch()
    for process in processes:
        _, errors = process.communicate(timeout=120)
        assert process.returncode == 0, errors

    governance = load_governance(config)  # the file parses, and holds both admins' last edits
    for model in admins:
        last = governance.retraining_for(model)
        assert last.cooldown_hours == FIRST_COOLDOWN + EDITS - 1, (model, last)
        assert last.drift_red_batches == (EDITS - 1) % 5 + 1
    assert config.read_text(encoding="utf-8").startswith("# roles and more")

    # Each save started from the previous one's result: no other save came in between and
    # wrote back a copy of the file read before it.
    with store.read() as connection:
        events = audit.events(connection, actions=["policy.changed"])
    for model, admin in admins.items():
        saves = sorted(
            (e for e in events if e.subject == audit.subject_for(model)), key=lambda e: e.seq
        )
        assert [e.actor for e in saves] == [admin] * EDITS
        expected_before = RetrainingPolicy(max_per_week=3)
        for save in saves:
            assert save.details["before"]["cooldown_hours"] == expected_before.cooldown_hours, (
                f"{model}: an edit was lost before save {save.seq}"
            )
            expected_before = RetrainingPolicy(**save.details["after"])
