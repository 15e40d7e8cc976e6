"""Microsoft Entra ID: OIDC discovery, client-credentials tokens, token checks."""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qs

from .schema import GraphError, Reply, b64


class Identity:
    """Sign-in endpoints (mixed into GraphServer)."""

    # ---- identity --------------------------------------------------------------------------

    def _discovery(self, path: str) -> Reply:
        tenant = path.strip("/").split("/")[0]
        if tenant != self.tenant_id:
            return aad_error(
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID.",
            )
        base = f"{self.base_url}/{tenant}"
        return Reply(
            200,
            {
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "token"],
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
            },
        )

    def _token(self, path: str, raw: bytes) -> Reply:
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        tenant = path.strip("/").split("/")[0]

        def aad(status: int, error: str, code: int, text: str) -> Reply:
            return aad_error(status, error, code, text)

        if tenant != self.tenant_id:
            return aad(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return aad(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        if form.get("client_id") != self.client_id:
            return aad(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{form.get('client_id')}' was not found in the directory '{tenant}'.",
            )
        if form.get("client_secret") == self.client_secret and self.secret_expired:
            # Entra ID's answer for a secret past its end date: AADSTS7000222, invalid_client
            # (Microsoft's "Troubleshoot ClientSecretCredential" table and the AADSTS error
            # code reference); HTTP 401 as for 7000215 (RFC 6749 5.2 allows 400 or 401 for
            # invalid_client; that Entra uses 401 here is an assumption).
            return aad(
                401,
                "invalid_client",
                7000222,
                f"The provided client secret keys for app '{self.client_id}' are expired. "
                "Visit the Azure portal to create new keys for your app: "
                "https://aka.ms/NewClientSecret, or consider using certificate credentials "
                "for added security: https://aka.ms/certCreds.",
            )
        if form.get("client_secret") != self.client_secret:
            return aad(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
            )
        if form.get("scope") != f"{self.base_url}/.default":
            return aad(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {form.get('scope')} is not valid.",
            )
        now = time.time()
        claims = {
            "aud": self.base_url,
            "iss": f"{self.base_url}/{tenant}/",
            "tid": tenant,
            "appid": self.client_id,
            "roles": list(self.roles),
            "iat": int(now),
            "exp": int(now) + self.token_lifetime,
        }
        token = ".".join(
            (
                b64(json.dumps({"typ": "JWT", "alg": "RS256"}).encode()),
                b64(json.dumps(claims).encode()),
                b64(secrets.token_bytes(32)),
            )
        )
        with self._lock:
            self._tokens[token] = now + self.token_lifetime
        return Reply(
            200,
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": token,
            },
        )

    def _authorize(self, headers: dict[str, str]) -> frozenset[str]:
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        token = auth[7:].strip()
        with self._lock:
            self.authorizations.append(token[-12:])
            expiry = self._tokens.get(token)
        if expiry is None or expiry < time.time():
            raise GraphError(
                401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
            )
        payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        return frozenset(payload.get("roles", []))


def aad_error(status: int, error: str, code: int, text: str) -> Reply:
    """A token endpoint error as Microsoft Entra ID sends it: the AADSTS code first in
    `error_description`, followed by the trace and correlation ids and the time on their
    own lines, and the same facts as fields (the "Token Issuance Endpoint Errors" page and
    the sample in the AADSTS error code reference)."""
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return Reply(
        status,
        {
            "error": error,
            "error_description": f"AADSTS{code}: {text}\r\nTrace ID: {trace}\r\n"
            f"Correlation ID: {correlation}\r\nTimestamp: {stamp}",
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        },
    )
