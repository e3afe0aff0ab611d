"""A Google service-account key file read into credentials; a key that cannot work is one ConfigError line."""

from __future__ import annotations

from core.errors import ConfigError


def service_account_credentials(path: str, scopes: list[str]):
    """Credentials from the service-account JSON key at ``path`` (BigQuery and Google Sheets)."""
    from google.oauth2 import service_account

    try:
        return service_account.Credentials.from_service_account_file(path, scopes=scopes)
    except (ValueError, KeyError, OSError) as exc:  # google.auth's MalformedError is a ValueError
        raise ConfigError(f"the Google credentials file {path} is not a usable service-account key "
                          f"({type(exc).__name__}: {str(exc)[:120].rstrip('.')}); download a new JSON key for the "
                          "service account") from None
