"""Write-back to a real Sage CRM through its REST API (issue 14), never its database.

What we rely on, and where it comes from:

- The base URL is `{http|https}://{server}/sdata/{install}j/sagecrm2/-/` and a record is
  `{Entity}('{id}')`; Basic auth with a CRM user's logon and password. Both as in Sage's
  sample client, github.com/Sage/sage_crm_rest_api_client (README "Creating the client",
  Helpers/HttpService.cs SetHeaderCredentials, Implementation/SageCRMImplementation.cs).
- An update sends only the changed columns, named as the table's columns (`Pers_FirstName`),
  with PATCH; Sage answers 200 (Sage CRM community, "Sage CRM 2019 R2: Ensuring best
  performance using the REST API"; the sample client's CompanyPutModel sends two columns).
- Since 7.1 a person's emails and phones are rows of `Email` and `Phone` joined through
  `EmailLink`/`PhoneLink` (Sage CRM help and the "Email and Phone Numbers in CRM" article):
  changing the Person record does not change them, so they are PATCHed on their own
  resources, `Email('{Emai_EmailId}')` and `Phone('{Phon_PhoneId}')`. We find those row ids
  in the CRM database we already read; a person without a row of that type gets one by POST
  to `Email`/`Phone` and a POST to `EmailLink`/`PhoneLink` (our reading of the 7.1+ layout,
  not yet tried against a live Sage CRM).
- A failed request's body says why (the sample client raises with the body); SData 2.0
  servers put it in `$diagnoses[].$message`, which we show when present.

Retries: 429 and 503 wait for Retry-After (tenacity) up to SAGE_REST_RETRY_MAX_WAIT in
all; then, as for a 401 (bad or disabled user) or a connection failure, the whole CRM is
unavailable for this run. Any other 4xx fails that one person.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception_type,
    stop_after_delay,
)

from sync_engine.config import Settings
from sync_engine.crm import schema as s
from sync_engine.crm.source import SageCrm, shown_rows
from sync_engine.crm.writer import CrmUnavailable, CrmWriteResult
from sync_engine.masking import mask_urls
from sync_engine.ops.metrics import throttled_sleep

# model field -> Person column (the columns source.py reads them from)
PERSON_COLUMNS = {
    "title": "Pers_Salutation",
    "first_name": "Pers_FirstName",
    "middle_name": "Pers_MiddleName",
    "last_name": "Pers_LastName",
    "suffix": "Pers_Suffix",
    "job_title": "Pers_Title",
    "department": "Pers_Department",
    "web_page": "Pers_WebSite",
}
# model field -> (kind, link type) of the Email/Phone row it lives in
LINKED = {
    "email": ("email", "Business"),
    "email2": ("email", "Private"),
    "business_phone": ("phone", "Business"),
    "business_fax": ("phone", "Fax"),
    "home_phone": ("phone", "Home"),
    "mobile_phone": ("phone", "Mobile"),
}
RETRY_STATUSES = {429, 503}


class _Retry(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


@dataclass
class _Calls:
    n: int = 0


def _retry_after(state: RetryCallState) -> float:
    """Sage's Retry-After when it gives one (seconds), else a short back-off."""
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, _Retry):
        value = exc.response.headers.get("Retry-After", "")
        if value.strip().isdigit():
            return min(float(value), 30.0)
    return min(0.5 * 2 ** (state.attempt_number - 1), 10.0)


def _why(response: httpx.Response) -> str:
    """One line from a failed answer: SData diagnoses when present, else the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        messages = [
            str(d.get("$message"))
            for d in body.get("$diagnoses", [])
            if isinstance(d, dict) and d.get("$message")
        ]
        if messages:
            return f"HTTP {response.status_code}: " + "; ".join(messages)
    text = " ".join(response.text.split())[:200]
    return f"HTTP {response.status_code}" + (f": {text}" if text else "")


class SageRestWriter:
    """PATCHes the changed fields of one person: the Person record for names and titles,
    each Email/Phone record for an email or a phone."""

    def __init__(
        self,
        base_url: str,
        user: str,
        password: str,
        crm: SageCrm,
        *,
        timeout: float = 30,
        retry_max_wait: float = 60,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.crm = crm
        self.retry_max_wait = retry_max_wait
        self._sleep = sleep
        self.client = httpx.Client(
            auth=httpx.BasicAuth(user, password),
            timeout=timeout,
            headers={"Accept": "application/json"},
        )

    @classmethod
    def from_settings(cls, settings: Settings, crm: SageCrm) -> SageRestWriter:
        password = (
            settings.sage_rest_password.get_secret_value() if settings.sage_rest_password else ""
        )
        return cls(
            settings.sage_rest_url or "",
            settings.sage_rest_user or "",
            password,
            crm,
            timeout=settings.sage_rest_timeout,
            retry_max_wait=settings.sage_rest_retry_max_wait,
        )

    def describe(self) -> str:
        return f"on, through Sage CRM's REST API at {mask_urls(self.base_url)}"

    def close(self) -> None:
        self.client.close()

    # -- one person ----------------------------------------------------------------------

    def write(self, person_id: int, changes: Mapping[str, str]) -> CrmWriteResult:
        unknown = sorted(set(changes) - set(PERSON_COLUMNS) - set(LINKED))
        if unknown:
            return CrmWriteResult(f"not a write-back field: {', '.join(unknown)}")
        calls = _Calls()
        try:
            person = {PERSON_COLUMNS[k]: v for k, v in changes.items() if k in PERSON_COLUMNS}
            if person:
                error = self._send(calls, "PATCH", f"Person('{person_id}')", person)
                if error:
                    return CrmWriteResult(error, calls.n)
            linked = {k: v for k, v in changes.items() if k in LINKED}
            rows = self._rows(person_id) if linked else {}
            for name, value in linked.items():
                error = self._write_linked(calls, person_id, LINKED[name], rows, value)
                if error:
                    return CrmWriteResult(error, calls.n)
        except CrmUnavailable as exc:
            exc.requests = calls.n
            raise
        return CrmWriteResult(None, calls.n)

    def _write_linked(
        self,
        calls: _Calls,
        person_id: int,
        where: tuple[str, str],
        rows: dict[tuple[str, str], int],
        value: str,
    ) -> str | None:
        kind, link_type = where
        row_id = rows.get(where)
        if kind == "email":
            body = {"Emai_EmailAddress": value}
            entity, link = "Email", "EmailLink"
        else:  # the whole number in Phon_Number, as the embedded CRM and Outlook keep it
            body = {"Phon_CountryCode": "", "Phon_AreaCode": "", "Phon_Number": value}
            entity, link = "Phone", "PhoneLink"
        if row_id is not None:
            return self._send(calls, "PATCH", f"{entity}('{row_id}')", body)
        created: dict[str, object] = {}
        error = self._send(calls, "POST", entity, body, created)
        if error:
            return error
        prefix = "ELink" if kind == "email" else "PLink"
        target = "ELink_EmailId" if kind == "email" else "PLink_PhoneId"
        return self._send(
            calls,
            "POST",
            link,
            {
                f"{prefix}_EntityID": s.PERSON_ENTITY_ID,
                f"{prefix}_RecordID": person_id,
                f"{prefix}_Type": link_type,
                target: created.get("$key"),
            },
        )

    def _rows(self, person_id: int) -> dict[tuple[str, str], int]:
        """(kind, type) -> the Email/Phone row the person shows, read as source.py reads it."""
        with self.crm.engine.connect() as conn:
            return shown_rows(conn, person_id)

    # -- one request ---------------------------------------------------------------------

    def _send(
        self,
        calls: _Calls,
        method: str,
        path: str,
        body: Mapping[str, object],
        answer: dict[str, object] | None = None,
    ) -> str | None:
        """One request with retries on 429/503; None when Sage took it, else why not.
        Raises CrmUnavailable when no write can succeed now."""

        @retry(
            retry=retry_if_exception_type(_Retry),
            wait=_retry_after,
            stop=stop_after_delay(self.retry_max_wait),
            sleep=throttled_sleep("sage_rest", self._sleep),  # only 429/503 are retried
            reraise=True,
        )
        def attempt() -> httpx.Response:
            calls.n += 1
            response = self.client.request(
                method,
                self.base_url + path,
                content=json.dumps(dict(body)),
                headers={"Content-Type": "application/json"},
            )
            if response.status_code in RETRY_STATUSES:
                raise _Retry(response)
            return response

        try:
            response = attempt()
        except _Retry as exc:
            raise CrmUnavailable(f"Sage CRM is busy or down: {_why(exc.response)}") from None
        except httpx.HTTPError as exc:
            raise CrmUnavailable(
                f"cannot reach Sage CRM's REST API ({type(exc).__name__})"
            ) from None
        if response.status_code == 401:
            raise CrmUnavailable(
                "Sage CRM refused SAGE_REST_USER's login (wrong password, or a disabled or "
                f"resource user): {_why(response)}"
            )
        if response.status_code >= 500:
            raise CrmUnavailable(f"Sage CRM failed: {_why(response)}")
        if response.status_code >= 400:
            return _why(response)
        if answer is not None:
            try:
                got = response.json()
            except ValueError:
                got = {}
            if isinstance(got, dict):
                answer.update(got)
        return None
