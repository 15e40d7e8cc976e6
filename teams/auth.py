"""The bot's own identity: its outbound tokens (msal) and where inbound tokens are checked.

The Teams SDK verifies every inbound activity's token (JWT signature from the keys at the
OpenID metadata, issuer, audience = our app id, expiry; `microsoft_teams.apps.auth`). We
hand it a `CloudEnvironment` so national clouds and the loopback Bot Connector of the
tests use the same code path, and a token provider of our own so a client secret or a
certificate both work and an authority other than Microsoft's is used as given (msal's
instance discovery only knows Microsoft's hosts).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading

import msal
from microsoft_teams.api.auth.cloud_environment import PUBLIC, CloudEnvironment, with_overrides

from teams.settings import PUBLIC_AUTHORITY, TeamsSettings

log = logging.getLogger(__name__)


class TokenRefused(Exception):
    """Entra ID would not give the bot a token; the message names the setting to check."""


def cloud(settings: TeamsSettings) -> CloudEnvironment:
    """Microsoft's public cloud, with the authority and metadata the settings name."""
    return with_overrides(
        PUBLIC,
        login_endpoint=settings.teams_authority.rstrip("/"),
        openid_metadata_url=settings.teams_openid_metadata,
    )


class BotTokens:
    """Client-credentials tokens for the bot (scope: the Bot Connector), cached by msal."""

    def __init__(self, settings: TeamsSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._app: msal.ConfidentialClientApplication | None = None

    def __call__(self, scope: str | list[str], _tenant_id: str | None = None) -> str:
        """The SDK's token provider: a bearer token for `scope` (from our tenant: a
        single-tenant bot, as Azure Bot registrations are made since 2025)."""
        scopes = [scope] if isinstance(scope, str) else list(scope)
        result = self._msal().acquire_token_for_client(scopes=scopes)
        if "access_token" not in result:
            code = str(result.get("error") or "error")
            detail = str(result.get("error_description") or "").splitlines()[0][:200]
            log.error(
                "Entra ID refused the bot a token: %s %s",
                code,
                detail,
                extra={"event": "teams_token_refused"},
            )
            raise TokenRefused(
                f"Microsoft Entra ID refused the Teams bot a token ({code}): check "
                "TEAMS_APP_ID, TEAMS_APP_PASSWORD (or TEAMS_CERTIFICATE_PATH) and TEAMS_TENANT_ID."
            )
        return str(result["access_token"])

    def _msal(self) -> msal.ConfidentialClientApplication:
        with self._lock:
            if self._app is None:
                s = self._settings
                authority = s.teams_authority.rstrip("/")
                self._app = msal.ConfidentialClientApplication(
                    s.teams_app_id,
                    client_credential=_credential(s),
                    authority=f"{authority}/{s.teams_tenant_id}",
                    instance_discovery=None if authority == PUBLIC_AUTHORITY else False,
                )
            return self._app


_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)


def _credential(s: TeamsSettings) -> str | dict[str, str]:
    """A client secret, or msal's certificate credential from one PEM file (private key
    and certificate; the thumbprint is the certificate's SHA-1, as Entra shows it)."""
    if s.teams_app_password and s.teams_app_password.get_secret_value():
        return s.teams_app_password.get_secret_value()
    assert s.teams_certificate_path is not None
    pem = s.teams_certificate_path.read_bytes()
    match = _CERT.search(pem)
    if match is None:
        raise TokenRefused("TEAMS_CERTIFICATE_PATH holds no certificate (PEM).")
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = x509.load_pem_x509_certificate(match.group(0))
    thumbprint = hashlib.sha1(cert.public_bytes(Encoding.DER)).hexdigest()
    return {"private_key": pem.decode(), "thumbprint": thumbprint}
