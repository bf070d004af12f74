"""The composition root: everything a Flightdeck process talks to, built in one place.

The dashboard (through :mod:`services.cache`), the control loop (``jobs.scheduler``), the jobs
and the tests take their store, MLflow gateway, governance, retraining engine and notifier from
a :class:`Wiring`; :func:`build` makes one from the settings. No Streamlit here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from services.core.gateway import TrackingGateway
from services.core.settings import Settings
from services.core.store import Store
from services.governance.audit_anchor import AuditAnchor, open_audited_store
from services.governance.config import Governance, load_governance
from services.governance.notifications import Notifier, Poster, post_json
from services.governance.requests import Registry
from services.retraining.base import Backend
from services.retraining.engines import backend_for


@dataclass(frozen=True, slots=True)
class Wiring:
    """The dependencies of every service that acts: what promotion, retraining and the
    control loop take as their first argument."""

    store: Store
    """The application store: requests, jobs, the audit log, the outbox, the heartbeat."""
    registry: Registry
    """The MLflow gateway (a :class:`TrackingGateway`), as the services that act see it."""
    governance: Governance
    """Roles, promotion policy, gates, drift sources: ``flightdeck.toml`` as last read."""
    retraining: Backend | None = None
    """The configured retraining engine; None where nothing starts or follows jobs."""
    anchor: AuditAnchor | None = None
    """The audit log's anchor in MLflow, which the store updates after each audited write."""
    post: Poster = post_json
    """How the notifier posts to the webhook (a fake only where a test says so)."""

    @property
    def notifier(self) -> Notifier:
        """Notifications through the store's outbox to the configured webhook."""
        return Notifier(self.store, self.governance.webhook_url, self.post)

    @property
    def backend(self) -> Backend:
        """The retraining engine; raises where this wiring was built without one."""
        if self.retraining is None:
            raise RuntimeError("this Wiring has no retraining engine: build it with one")
        return self.retraining

    def with_governance(self, governance: Governance) -> Wiring:
        """The same wiring with ``flightdeck.toml`` read again (policies edited on a page)."""
        return replace(self, governance=governance)


def build(
    settings: Settings,
    governance: Governance | None = None,
    gateway: TrackingGateway | None = None,
) -> Wiring:
    """Everything a process needs, from its settings (and the gateway, when the caller needs
    it as a :class:`TrackingGateway` too).

    The store is opened (and migrated) with the audit key and redactor, and anchors the audit
    log's head in MLflow after every audited write.

    Raises:
        ConfigError: ``flightdeck.toml`` is invalid (when ``governance`` is not given).
        StoreError: The store cannot be opened.
    """
    gateway = gateway or TrackingGateway(settings)
    anchor = audit_anchor(settings, gateway)
    return Wiring(
        store=open_audited_store(settings, anchor),
        registry=gateway,
        governance=governance or load_governance(settings.governance_path),
        retraining=backend_for(settings),
        anchor=anchor,
    )


def audit_anchor(settings: Settings, gateway: TrackingGateway) -> AuditAnchor:
    """The audit log's anchor in MLflow, in the configured experiment."""
    return AuditAnchor(gateway, settings.audit_anchor_experiment)
