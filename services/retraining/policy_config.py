"""Saving a model's retraining policy into ``flightdeck.toml``: admins only, audited.

The file stays the one source of policies (the scheduler reads it each pass); the edit keeps
its comments and every other section, and the whole file is checked before it is replaced.
Reading, changing and replacing the file happen inside the store's write lock, so concurrent
saves (two admins, two tabs) queue up instead of overwriting each other's edits.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, fields
from pathlib import Path

import tomlkit
from tomlkit.exceptions import TOMLKitError

from services.core.errors import ConfigurationError
from services.core.store import Store
from services.governance import audit
from services.governance.auth import Action, Identity, require
from services.governance.config import RetrainingPolicy, parse_governance


def save_policy(
    path: Path, store: Store, actor: Identity, model: str, policy: RetrainingPolicy
) -> RetrainingPolicy:
    """Write ``policy`` as ``[retraining.models."<model>"]`` and audit the change.

    Only the settings that differ from ``[retraining.default]`` are written, so later changes
    to the default still reach this model.

    Raises:
        PermissionDenied: ``actor`` is not an admin.
        ConfigurationError: The file cannot be read or written, or the policy is invalid
            (nothing is written then).
        StoreError: The audit log could not be written (nothing is written then either).
    """
    require(actor, Action.ADMINISTER)
    # Read, change and replace the file inside the store's write lock: two admins saving two
    # models at once each start from the other's saved file, so neither edit is lost.
    with store.write() as connection:  # one transaction: a failed write undoes the audit event
        document = _read(path)
        before = parse_governance(document.unwrap(), str(path))
        old = before.retraining_for(model)
        default = before.default_retraining
        changed = {
            f.name: getattr(policy, f.name)
            for f in fields(RetrainingPolicy)
            if getattr(policy, f.name) != getattr(default, f.name)
        }
        retraining = document.setdefault("retraining", tomlkit.table(is_super_table=True))
        models = retraining.setdefault("models", tomlkit.table(is_super_table=True))
        if changed:
            section = tomlkit.table()
            section.update(changed)
            models[model] = section
        elif model in models:
            del models[model]
        after = parse_governance(document.unwrap(), str(path)).retraining_for(model)  # checks all
        audit.append(
            connection,
            actor=actor.name,
            action="policy.changed",
            subject=audit.subject_for(model),
            details={"before": asdict(old), "after": asdict(after)},
        )
        _replace(path, tomlkit.dumps(document))
    return after


def _read(path: Path) -> tomlkit.TOMLDocument:
    """The file as an editable document (comments kept); an empty one when it does not exist."""
    try:
        return (
            tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()
        )
    except (OSError, TOMLKitError) as exc:
        raise ConfigurationError(f"Cannot read {path}: {exc}") from exc


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: readers see the old file or the new, never half."""
    try:
        handle, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(scratch, path)
    except OSError as exc:
        raise ConfigurationError(f"Cannot write {path}: {exc}") from exc
