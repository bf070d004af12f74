"""Flightdeck's settings: one typed object, built once from the environment and secrets.

Precedence, highest first: environment variables (``FLIGHTDECK_*``, ``MLFLOW_*``), then
``.streamlit/secrets.toml`` (sections ``[flightdeck]`` and ``[mlflow]``), then the defaults below.
Every option is listed in the README's configuration table.
"""

from __future__ import annotations

import getpass
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote, urlsplit

from services.core.errors import ConfigurationError
from services.core.redaction import (
    Redactor,
    mask_url_passwords,
    without_password,
    without_userinfo,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SECRETS_PATH = PROJECT_ROOT / ".streamlit" / "secrets.toml"

EMBEDDED_HOST = "127.0.0.1"
"""Embedded servers and the dashboard only ever listen on loopback."""

SUPPORTED_SCHEMES = ("http", "https")
DEFAULT_AUTH_SECRET_HEADER = "X-Flightdeck-Proxy-Secret"
"""The header in which a login proxy sends the shared secret, unless configured otherwise."""

# Cache lifetimes, in seconds. Decorators need them at import time, so they are constants.
READ_CACHE_TTL_S = 60
"""How long a read from MLflow (experiments, runs) is reused before it is fetched again."""
LOADER_TTL_S = 600
"""How long all runs loaded by "Load all" are kept for reuse."""
STATUS_CACHE_TTL_S = 15
"""How long a successful server check is reused; failures are never cached."""

MLFLOW_BACKOFF_FACTOR = 1
"""Seconds of backoff before the MLflow client's first retry, doubling after."""
MLFLOW_BACKOFF_JITTER_S = 1.0
"""The MLflow client's random extra wait per retry, at most (its default)."""

AUDIT_ANCHOR_EXPERIMENT = "flightdeck-audit"
"""The MLflow experiment whose run anchors the audit log's head, by default."""
AUDIT_KEY_MIN_CHARS = 32
"""The shortest audit key accepted: an HMAC key must not be guessable."""
SECRET: Mapping[str, bool] = MappingProxyType({"secret": True})
"""Field metadata of a credential: its value is redacted wherever text is stored or shown."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything Flightdeck can be configured with. Credentials never appear in ``repr``."""

    data_dir: Path
    """Folder for the embedded server's store, the application store and job state."""
    tracking_uri: str
    """The MLflow tracking server, e.g. ``http://127.0.0.1:5000``; never with ``user:password@``
    (credentials in a URI move to :attr:`mlflow_username` and :attr:`mlflow_password`)."""
    embedded: bool
    """True when Flightdeck starts the tracking server itself (``MLFLOW_TRACKING_URI`` unset)."""
    mlflow_port: int
    """Port of the embedded tracking server."""
    dashboard_port: int
    """Port the dashboard is served on by ``make run``."""
    http_timeout_s: float
    """Per-request timeout of the MLflow client, in seconds."""
    http_max_retries: int
    """Retries of the MLflow client after a failed request (0 to 2)."""
    health_timeout_s: float
    """Timeout of the reachability check the shell runs before each page, in seconds."""
    runs_page_size: int
    """Rows fetched for the first page of a runs table (at most 200)."""
    dev_user: str
    """The user shown in development mode, where there is no authentication."""
    governance_path: Path
    """``flightdeck.toml``: roles, promotion policy and gates."""
    store_url: str = field(repr=False)
    """SQLAlchemy URL of the application store; a SQLite file in ``data_dir`` by default."""
    auth_header: str | None = None
    """A reverse proxy's identity header (e.g. ``X-Forwarded-Email``); off when None. Trusted
    only on requests that also carry ``auth_secret`` in ``auth_secret_header``."""
    auth_secret_header: str = DEFAULT_AUTH_SECRET_HEADER
    """The header in which the proxy proves itself with ``auth_secret``."""
    auth_secret: str | None = field(default=None, repr=False, metadata=SECRET)
    """The secret the proxy sends in ``auth_secret_header``; from the secrets or environment."""
    dev_mode: bool = False
    """Development mode: anyone picks any configured user. Honoured only when no login or proxy
    is configured and the dashboard listens on loopback
    (:func:`services.governance.auth.identity_source`)."""
    mlflow_username: str | None = field(default=None, repr=False)
    """Basic-auth user for the tracking server (``MLFLOW_TRACKING_USERNAME``)."""
    mlflow_password: str | None = field(default=None, repr=False, metadata=SECRET)
    """Basic-auth password for the tracking server (``MLFLOW_TRACKING_PASSWORD``)."""
    mlflow_token: str | None = field(default=None, repr=False, metadata=SECRET)
    """Bearer token for the tracking server (``MLFLOW_TRACKING_TOKEN``)."""
    retraining_engine: str = "local"
    """Where retraining jobs run: ``local`` (a subprocess), ``prefect`` or ``airflow``."""
    prefect_api_url: str = "http://127.0.0.1:4200/api"
    """The Prefect 3 server's API, when the engine is ``prefect``."""
    prefect_deployment: str = "flightdeck-retrain/flightdeck-retrain"
    """The ``flow/deployment`` name ``make prefect-deploy`` registers."""
    airflow_url: str = "http://127.0.0.1:8080"
    """The Airflow 3 API server, when the engine is ``airflow``."""
    airflow_dag_id: str = "flightdeck_retrain"
    """The DAG ``jobs/airflow_dag.py`` defines."""
    airflow_username: str | None = field(default=None, repr=False)
    """Airflow user for ``/auth/token``."""
    airflow_password: str | None = field(default=None, repr=False, metadata=SECRET)
    """Its password."""
    audit_key: str | None = field(default=None, repr=False, metadata=SECRET)
    """The HMAC key that chains audit events (``FLIGHTDECK_AUDIT_KEY``); plain SHA-256 if None."""
    audit_anchor_experiment: str = AUDIT_ANCHOR_EXPERIMENT
    """The MLflow experiment whose run anchors the audit log's head (one per deployment)."""
    oidc_secrets: tuple[str, ...] = field(default=(), repr=False, metadata=SECRET)
    """The OIDC client and cookie secrets in ``[auth]`` of the secrets file, to redact them."""
    registry_webhook_port: int = 0
    """Where the control loop listens for MLflow's registry webhooks (loopback); 0 for off."""
    registry_webhook_url: str = ""
    """The URL MLflow posts to; ``http://127.0.0.1:<port>/mlflow-webhook`` when empty."""

    def __post_init__(self) -> None:
        # A tracking URI with user:password@ would be shown, logged and sent to engines: keep
        # the URI clean and let the credentials travel as credentials (explicit ones win).
        parts = urlsplit(self.tracking_uri)
        if "@" in parts.netloc:
            user = unquote(parts.username) if parts.username else None
            password = unquote(parts.password) if parts.password else None
            object.__setattr__(self, "tracking_uri", without_userinfo(self.tracking_uri))
            object.__setattr__(self, "mlflow_username", self.mlflow_username or user)
            object.__setattr__(self, "mlflow_password", self.mlflow_password or password)

    def __repr__(self) -> str:
        # Credential fields are left out; a password inside an engine's URL is masked.
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)
        return mask_url_passwords(f"Settings({shown})")

    @property
    def secret_values(self) -> tuple[str, ...]:
        """Every configured credential's value (and passwords in the store and engine URLs), for
        redaction."""
        values: list[str] = []
        for item in fields(self):
            if item.metadata.get("secret"):
                value = getattr(self, item.name)
                values.extend(value if isinstance(value, tuple) else [value] if value else [])
        urls = (self.store_url, self.prefect_api_url, self.airflow_url)
        passwords = [p for p in (_url_password(url) for url in urls) if p]
        return (*values, *passwords)

    @property
    def redactor(self) -> Redactor:
        """Masks :attr:`secret_values` and URL passwords in text before it is stored or shown."""
        return Redactor.of(self.secret_values)

    @property
    def mlflow_call_limit_s(self) -> float:
        """The longest one MLflow client call can take, in seconds: every try timing out, with
        the backoff and jitter between tries."""
        retries = self.http_max_retries
        backoff = sum(
            float(MLFLOW_BACKOFF_FACTOR * 2**i) + MLFLOW_BACKOFF_JITTER_S for i in range(retries)
        )
        return self.http_timeout_s * (retries + 1) + backoff

    @property
    def mlflow_db_path(self) -> Path:
        """The embedded server's SQLite file."""
        return self.data_dir / "mlflow.db"

    @property
    def artifacts_dir(self) -> Path:
        """The embedded server's artifact root."""
        return self.data_dir / "artifacts"


def load_settings(
    env: Mapping[str, str] | None = None, secrets_path: Path = DEFAULT_SECRETS_PATH
) -> Settings:
    """Build the settings from the environment and the secrets file.

    Args:
        env: Variables to read; ``os.environ`` when omitted.
        secrets_path: The Streamlit secrets file; a missing file is fine.

    Raises:
        ConfigurationError: A value is malformed, e.g. a tracking URI that is not http(s).
    """
    env = os.environ if env is None else env
    secrets = _read_secrets(secrets_path)
    flightdeck_secrets = secrets.get("flightdeck", {})
    mlflow_secrets = secrets.get("mlflow", {})

    def pick(env_name: str, section: Mapping[str, Any], key: str, default: str) -> str:
        value = env.get(env_name) or section.get(key)
        return default if value in (None, "") else str(value)

    mlflow_port = _to_int(
        "FLIGHTDECK_MLFLOW_PORT",
        pick("FLIGHTDECK_MLFLOW_PORT", flightdeck_secrets, "mlflow_port", "5000"),
    )
    external_uri = env.get("MLFLOW_TRACKING_URI") or mlflow_secrets.get("tracking_uri")
    tracking_uri = str(external_uri or f"http://{EMBEDDED_HOST}:{mlflow_port}").rstrip("/")
    validate_tracking_uri(tracking_uri)

    retries = _to_int(
        "FLIGHTDECK_HTTP_MAX_RETRIES",
        pick("FLIGHTDECK_HTTP_MAX_RETRIES", flightdeck_secrets, "http_max_retries", "2"),
    )
    if not 0 <= retries <= 2:
        raise ConfigurationError(
            f"FLIGHTDECK_HTTP_MAX_RETRIES must be 0, 1 or 2, not {retries}: more retries hang "
            "pages for minutes when the server is down."
        )
    page_size = _to_int(
        "FLIGHTDECK_RUNS_PAGE_SIZE",
        pick("FLIGHTDECK_RUNS_PAGE_SIZE", flightdeck_secrets, "runs_page_size", "200"),
    )
    data_dir = Path(
        pick(
            "FLIGHTDECK_DATA_DIR", flightdeck_secrets, "data_dir", str(PROJECT_ROOT / ".flightdeck")
        )
    ).expanduser()
    data_dir = data_dir if data_dir.is_absolute() else PROJECT_ROOT / data_dir
    governance_path = Path(
        pick(
            "FLIGHTDECK_CONFIG",
            flightdeck_secrets,
            "config",
            str(PROJECT_ROOT / "flightdeck.toml"),
        )
    ).expanduser()
    return Settings(
        data_dir=data_dir,
        tracking_uri=tracking_uri,
        embedded=not external_uri,
        mlflow_port=mlflow_port,
        dashboard_port=_to_int(
            "FLIGHTDECK_PORT", pick("FLIGHTDECK_PORT", flightdeck_secrets, "port", "8501")
        ),
        http_timeout_s=_to_float(
            "FLIGHTDECK_HTTP_TIMEOUT",
            pick("FLIGHTDECK_HTTP_TIMEOUT", flightdeck_secrets, "http_timeout", "10"),
        ),
        http_max_retries=retries,
        health_timeout_s=_to_float(
            "FLIGHTDECK_HEALTH_TIMEOUT",
            pick("FLIGHTDECK_HEALTH_TIMEOUT", flightdeck_secrets, "health_timeout", "5"),
        ),
        runs_page_size=min(max(page_size, 1), 200),
        dev_user=pick("FLIGHTDECK_DEV_USER", flightdeck_secrets, "dev_user", _login_name()),
        governance_path=governance_path
        if governance_path.is_absolute()
        else PROJECT_ROOT / governance_path,
        # The store URL may hold a database password, so it is read like a credential.
        store_url=pick(
            "FLIGHTDECK_STORE_URL",
            flightdeck_secrets,
            "store_url",
            f"sqlite:///{data_dir / 'flightdeck.db'}",
        ),
        auth_header=pick("FLIGHTDECK_AUTH_HEADER", flightdeck_secrets, "auth_header", "").strip()
        or None,
        auth_secret_header=pick(
            "FLIGHTDECK_AUTH_SECRET_HEADER",
            flightdeck_secrets,
            "auth_secret_header",
            DEFAULT_AUTH_SECRET_HEADER,
        ).strip(),
        # A credential: read like the MLflow password, never from flightdeck.toml.
        auth_secret=pick("FLIGHTDECK_AUTH_SECRET", flightdeck_secrets, "auth_secret", "") or None,
        dev_mode=_to_bool(
            "FLIGHTDECK_DEV_MODE", pick("FLIGHTDECK_DEV_MODE", flightdeck_secrets, "dev_mode", "0")
        ),
        mlflow_username=env.get("MLFLOW_TRACKING_USERNAME") or mlflow_secrets.get("username"),
        mlflow_password=env.get("MLFLOW_TRACKING_PASSWORD") or mlflow_secrets.get("password"),
        mlflow_token=env.get("MLFLOW_TRACKING_TOKEN") or mlflow_secrets.get("token"),
        retraining_engine=_engine(
            pick("FLIGHTDECK_RETRAINING_ENGINE", flightdeck_secrets, "retraining_engine", "local")
        ),
        prefect_api_url=pick(
            "FLIGHTDECK_PREFECT_API_URL",
            flightdeck_secrets,
            "prefect_api_url",
            "http://127.0.0.1:4200/api",
        ).rstrip("/"),
        prefect_deployment=pick(
            "FLIGHTDECK_PREFECT_DEPLOYMENT",
            flightdeck_secrets,
            "prefect_deployment",
            "flightdeck-retrain/flightdeck-retrain",
        ),
        airflow_url=pick(
            "FLIGHTDECK_AIRFLOW_URL", flightdeck_secrets, "airflow_url", "http://127.0.0.1:8080"
        ).rstrip("/"),
        airflow_dag_id=pick(
            "FLIGHTDECK_AIRFLOW_DAG_ID", flightdeck_secrets, "airflow_dag_id", "flightdeck_retrain"
        ),
        airflow_username=pick(
            "FLIGHTDECK_AIRFLOW_USERNAME", flightdeck_secrets, "airflow_username", ""
        )
        or None,
        airflow_password=pick(
            "FLIGHTDECK_AIRFLOW_PASSWORD", flightdeck_secrets, "airflow_password", ""
        )
        or None,
        audit_key=_audit_key(pick("FLIGHTDECK_AUDIT_KEY", flightdeck_secrets, "audit_key", "")),
        audit_anchor_experiment=pick(
            "FLIGHTDECK_AUDIT_ANCHOR_EXPERIMENT",
            flightdeck_secrets,
            "audit_anchor_experiment",
            AUDIT_ANCHOR_EXPERIMENT,
        ).strip()
        or AUDIT_ANCHOR_EXPERIMENT,
        oidc_secrets=tuple(_secret_strings(secrets.get("auth", {}))),
        registry_webhook_port=_to_int(
            "FLIGHTDECK_REGISTRY_WEBHOOK_PORT",
            pick(
                "FLIGHTDECK_REGISTRY_WEBHOOK_PORT", flightdeck_secrets, "registry_webhook_port", "0"
            ),
        ),
        registry_webhook_url=pick(
            "FLIGHTDECK_REGISTRY_WEBHOOK_URL", flightdeck_secrets, "registry_webhook_url", ""
        ).strip(),
    )


def validate_tracking_uri(uri: str) -> None:
    """Reject URIs Flightdeck cannot use, with a message that says what would work.

    Raises:
        ConfigurationError: The scheme is not http(s) or the host is missing.
    """
    parts = urlsplit(uri)
    if parts.scheme not in SUPPORTED_SCHEMES or not parts.netloc:
        raise ConfigurationError(
            f"MLFLOW_TRACKING_URI={without_password(uri)!r} is not an MLflow tracking server URL. "
            "Flightdeck reads a running `mlflow server` over HTTP: use http://host:port or "
            "https://host, or unset MLFLOW_TRACKING_URI to use the embedded server."
        )


def mlflow_client_environment(settings: Settings) -> dict[str, str]:
    """The variables the MLflow client reads, so they are set before its first call."""
    values = {
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(int(settings.http_timeout_s)),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(settings.http_max_retries),
        # MLflow's default backoff would still add seconds between the retries we allow.
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(MLFLOW_BACKOFF_FACTOR),
        "MLFLOW_TRACKING_USERNAME": settings.mlflow_username or "",
        "MLFLOW_TRACKING_PASSWORD": settings.mlflow_password or "",
        "MLFLOW_TRACKING_TOKEN": settings.mlflow_token or "",
    }
    return {name: value for name, value in values.items() if value}


CREDENTIAL_VARIABLES = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)


def apply_mlflow_environment(settings: Settings) -> None:
    """Export :func:`mlflow_client_environment` into this process's environment.

    The MLflow client reads credentials only from the environment, so credentials that these
    settings do not have are removed rather than left over from another configuration.
    """
    values = mlflow_client_environment(settings)
    for name in CREDENTIAL_VARIABLES:
        if name not in values:
            os.environ.pop(name, None)
    os.environ.update(values)


def _read_secrets(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}. Fix or remove it.") from exc


def _audit_key(raw: str) -> str | None:
    if not raw:
        return None
    if len(raw) < AUDIT_KEY_MIN_CHARS:
        raise ConfigurationError(
            f"FLIGHTDECK_AUDIT_KEY is too short ({len(raw)} characters; at least "
            f"{AUDIT_KEY_MIN_CHARS}): make one with `python -c 'import secrets; "
            "print(secrets.token_hex(32))'`."
        )
    return raw


def _secret_strings(section: Any) -> list[str]:
    """The values of every ``*secret`` key in a secrets section and its subsections."""
    found: list[str] = []
    if isinstance(section, Mapping):
        for key, value in section.items():
            if isinstance(value, Mapping):
                found += _secret_strings(value)
            elif str(key).endswith("secret") and isinstance(value, str) and value:
                found.append(value)
    return found


def _url_password(url: str) -> str | None:
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def _to_int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, not {raw!r}.") from None


def _to_float(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, not {raw!r}.") from None


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _to_bool(name: str, raw: str) -> bool:
    value = raw.strip().casefold()
    if value not in _TRUE + _FALSE:
        raise ConfigurationError(f"{name} must be 1 or 0 (true or false), not {raw!r}.")
    return value in _TRUE


RETRAINING_ENGINES = ("local", "prefect", "airflow")


def _engine(raw: str) -> str:
    if raw not in RETRAINING_ENGINES:
        raise ConfigurationError(
            f"FLIGHTDECK_RETRAINING_ENGINE must be one of {', '.join(RETRAINING_ENGINES)}, "
            f"not {raw!r}."
        )
    return raw


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "developer"
