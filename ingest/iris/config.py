"""IRIS connection settings: environment variables, or the settings.json of Elexon's own client.

Secrets (client secret, connection string) come only from the environment or a settings file kept
outside git; they are registered for redaction, so no log line or error message shows them.

=========================  ===================================================================
``IRIS_CONNECTION_STRING``  a Service Bus connection string (tests, the local emulator); wins
``IRIS_QUEUE_NAME``         your queue, ``iris.<guid>``
``IRIS_CLIENT_ID``          Entra ID app (client) id from the IRIS registration
``IRIS_CLIENT_SECRET``      its secret (expires after 2 years)
``IRIS_TENANT_ID``          default: Elexon's tenant ``4203b7a0-7773-4de5-b830-8b263a20426e``
``IRIS_NAMESPACE``          default ``elexon-insights-iris`` (→ ``….servicebus.windows.net``)
``IRIS_SECRET_EXPIRES``     YYYY-MM-DD; ``run.py status`` warns 30 days ahead
=========================  ===================================================================
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

from azure.servicebus import ServiceBusClient

from core.errors import IrisConfigError
from core.logs import register_secret

ELEXON_TENANT = "4203b7a0-7773-4de5-b830-8b263a20426e"
# settings.toml [iris] keys → the Elexon client's settings.json keys
_TOML_KEYS = {"queue_name": "QueueName", "client_id": "ClientId", "client_secret": "Secret", "tenant_id": "TenantId",
              "namespace": "ServiceBusNamespace", "secret_expires": "SecretExpires", "connection_string": "ConnectionString"}
DEFAULT_NAMESPACE = "elexon-insights-iris"


@dataclass
class IrisSettings:
    queue_name: str
    namespace: str = DEFAULT_NAMESPACE
    tenant_id: str = ELEXON_TENANT
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    connection_string: str | None = field(default=None, repr=False)
    secret_expires: dt.date | None = None

    @classmethod
    def load(cls, *, connection_string: str | None = None, queue_name: str | None = None,
             settings_file: str | Path | None = None, environ: dict | None = None,
             configured: dict | None = None) -> "IrisSettings":
        """Arguments first, then the ``IRIS_*`` environment variables (``environ``: captured once by
        core.config, ``Settings.iris_environment``), then an Elexon-client settings.json, then the
        ``[iris]`` section of settings.toml (``configured``)."""
        env = environ or {}
        file: dict = {}
        if settings_file:
            try:
                file = json.loads(Path(settings_file).read_text())
            except (OSError, ValueError) as exc:
                raise IrisConfigError(f"cannot read IRIS settings file {settings_file}: {exc}") from None
        toml = {_TOML_KEYS.get(k, k): v for k, v in (configured or {}).items()}

        def pick(env_name: str, file_key: str) -> str | None:
            value = env.get(env_name) or file.get(file_key) or toml.get(file_key)
            return str(value).strip() if value else None

        conn = connection_string or pick("IRIS_CONNECTION_STRING", "ConnectionString")
        queue = queue_name or pick("IRIS_QUEUE_NAME", "QueueName") or _entity_path(conn)
        expires_text = pick("IRIS_SECRET_EXPIRES", "SecretExpires")
        try:
            expires = dt.date.fromisoformat(expires_text) if expires_text else None
        except ValueError:
            raise IrisConfigError(f"IRIS_SECRET_EXPIRES must be YYYY-MM-DD, got {expires_text!r}") from None
        settings = cls(
            queue_name=queue or "",
            namespace=pick("IRIS_NAMESPACE", "ServiceBusNamespace") or DEFAULT_NAMESPACE,
            tenant_id=pick("IRIS_TENANT_ID", "TenantId") or ELEXON_TENANT,
            client_id=pick("IRIS_CLIENT_ID", "ClientId"),
            client_secret=pick("IRIS_CLIENT_SECRET", "Secret"),
            connection_string=conn,
            secret_expires=expires,
        )
        settings.validate()
        register_secret(settings.client_secret)
        register_secret(settings.connection_string)
        return settings

    def validate(self) -> None:
        if not self.queue_name:
            raise IrisConfigError("no IRIS queue: set IRIS_QUEUE_NAME (iris.<guid> from your IRIS registration)")
        if self.connection_string:
            return
        if not (self.client_id and self.client_secret):
            raise IrisConfigError(
                "no IRIS credentials: set IRIS_CLIENT_ID and IRIS_CLIENT_SECRET (or IRIS_CONNECTION_STRING, "
                "or pass --iris-settings with Elexon's client settings.json)"
            )

    @property
    def fully_qualified_namespace(self) -> str:
        return self.namespace if "." in self.namespace else f"{self.namespace}.servicebus.windows.net"

    @property
    def where(self) -> str:
        """The queue and its host, for messages (never the connection string: it holds the key)."""
        host = _endpoint_host(self.connection_string) if self.connection_string else self.fully_qualified_namespace
        return f"queue {self.queue_name} at {host or 'the connection string endpoint'}"

    def client(self) -> ServiceBusClient:
        """A Service Bus client for these settings (the SDK's own retries kept short: we retry ourselves)."""
        if self.connection_string:
            return ServiceBusClient.from_connection_string(self.connection_string, retry_total=2)
        from azure.identity import ClientSecretCredential

        credential = ClientSecretCredential(self.tenant_id, self.client_id, self.client_secret)
        return ServiceBusClient(self.fully_qualified_namespace, credential, retry_total=2)


def _endpoint_host(connection_string: str) -> str | None:
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "endpoint" and "://" in value:
            return value.split("://", 1)[1].strip().strip("/") or None
    return None


def _entity_path(connection_string: str | None) -> str | None:
    for part in (connection_string or "").split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "entitypath" and value:
            return value.strip()
    return None
