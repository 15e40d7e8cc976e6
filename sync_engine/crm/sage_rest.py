"""Write-back to a real Sage CRM through its REST API (issues 14 and 19), never its database.

What we rely on, and where it comes from:

- The base URL is `{http|https}://{server}/sdata/{install}j/sagecrm2/-/` and a record is
  `{Entity}('{id}')`; Basic auth with a CRM user's logon and password. Both as in Sage's
  sample client, github.com/Sage/sage_crm_rest_api_client (README "Creating the client",
  Helpers/HttpService.cs SetHeaderCredentials, Implementation/SageCRMImplementation.cs).
  The client lists the entities the API exposes with `$prototypes` (GetAllEntities).
- An update sends only the changed columns, named as the table's columns (`Pers_FirstName`),
  with PATCH; Sage answers 200 (Sage CRM community, "Sage CRM 2019 R2: Ensuring best
  performance using the REST API"). The same article: the answer is read "from memory",
  not the database, so a table-level script may have stored something else; the URL
  flag `returnPartial=false` makes Sage read it back. We ask for it, and still prove
  every write by reading the database ourselves (sync_engine/write_back_run.py). (Sage's
  sample client updates with PUT; PATCH is what the article and SData 2.0 use.)
- Since 7.1 a person's emails and phones are rows of `Email` and `Phone` joined through
  `EmailLink`/`PhoneLink` (Sage CRM help and the "Email and Phone Numbers in CRM"
  article), and a row may be linked to several records (a person's business phone that
  is the company's switchboard). Which row to change, make or relink is decided by
  crm/row_writes.py, for this writer and the embedded demo CRM's alike: a row only this
  person links to is PATCHed; a shared row is never changed: the person gets a row of
  their own (POST) and only their link is moved to it (PATCH `EmailLink('{id}')`). A
  person with no row of a type gets a new row and a new link. No Sage page lists `EmailLink`/`PhoneLink` as REST resources, so
  those steps may fail: then the row just created is deleted again (DELETE, as the
  sample client's Delete), or, when that fails too, remembered and reused next time;
  never left behind. `crm check` says which of the five resources the API answers.
- A phone is written as Sage's integration keeps it, split across country code, area
  code and number (crm/phones.py, through row_writes.py).
- Each text column's width is read from the database's catalogue (crm/rows.py): a value
  longer than its column is refused for that person before anything is sent (SQL
  Server would answer "String or binary data would be truncated", which Sage passes on
  as a 500).
- Only 200, 201 and 204 are success. A 3xx (an IIS redirecting http to https) is not:
  httpx follows no redirect, so it stops write-back naming the `Location`.
- A failed request's body says why; SData 2.0 servers put it in `$diagnoses[].$message`.
  That text can name install paths, SQL logins and servers: it is the admin's, never
  shown to a salesperson.

Retries: 429 and 503 wait for Retry-After (tenacity) up to SAGE_REST_RETRY_MAX_WAIT in
all. The run's write-back stops (CrmUnavailable) only for a connection failure, a 401,
429/503 beyond that budget, or a redirect; a 401 also pauses write-back until the
credentials change (Sage locks an account out after failed logons). Any other answer
(4xx, 500) fails that one person.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx
from tenacity import RetryCallState, retry, retry_if_exception_type, stop_after_delay

from sync_engine.config import Settings
from sync_engine.crm import schema as s
from sync_engine.crm.row_writes import (
    LINKED,
    PERSON_COLUMNS,
    Action,
    LinkedRow,
    RowWrite,
    first_too_long,
    kinds_of,
    row_writes,
)
from sync_engine.crm.rows import column_widths, linked_rows, live_links, row_is_live
from sync_engine.crm.source import SageCrm
from sync_engine.crm.writer import OUTLOOK_FIX, CrmUnavailable, CrmWriteResult, OrphanMemory
from sync_engine.masking import mask_urls
from sync_engine.ops.metrics import throttled_sleep

# kind -> (row entity, link entity, link column prefix, the link's row column)
RESOURCES = {
    "email": ("Email", "EmailLink", "ELink", "ELink_EmailId"),
    "phone": ("Phone", "PhoneLink", "PLink", "PLink_PhoneId"),
}
WRITTEN_TABLES = ("Person", "Email", "Phone")
SUCCESS = {200, 201, 204}
RETRY_STATUSES = {429, 503}
READ_BACK = "?returnPartial=false"  # Sage answers from the database, not from memory


class _Retry(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


@dataclass
class Calls:
    """Round trips made so far (retries included), for SyncResult.crm_requests."""

    n: int = 0


def _retry_after(state: RetryCallState) -> float:
    """Sage's Retry-After when it gives one (seconds), else a short back-off."""
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, _Retry):
        value = exc.response.headers.get("Retry-After", "")
        if value.strip().isdigit():
            return min(float(value), 30.0)
    return min(0.5 * 2 ** (state.attempt_number - 1), 10.0)


def sage_words(response: httpx.Response) -> str:
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


class SageRestClient:
    """One Sage CRM REST API: requests with retries, and Sage's answers sorted into
    success, this record's failure, and no write possible now (CrmUnavailable)."""

    def __init__(
        self,
        base_url: str,
        user: str,
        password: str,
        *,
        timeout: float = 30,
        retry_max_wait: float = 60,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.user = user
        self.retry_max_wait = retry_max_wait
        self._sleep = sleep
        self.client = httpx.Client(
            auth=httpx.BasicAuth(user, password),
            timeout=timeout,
            headers={"Accept": "application/json"},
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> SageRestClient:
        password = (
            settings.sage_rest_password.get_secret_value() if settings.sage_rest_password else ""
        )
        return cls(
            settings.sage_rest_url or "",
            settings.sage_rest_user or "",
            password,
            timeout=settings.sage_rest_timeout,
            retry_max_wait=settings.sage_rest_retry_max_wait,
        )

    def close(self) -> None:
        self.client.close()

    def request(
        self, calls: Calls, method: str, path: str, body: Mapping[str, object] | None = None
    ) -> httpx.Response:
        """One request with retries on 429/503. Raises CrmUnavailable when no write can
        succeed now; any other answer is returned for the caller to judge."""

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
                content=None if body is None else json.dumps(dict(body)),
                headers={"Content-Type": "application/json"} if body is not None else None,
            )
            if response.status_code in RETRY_STATUSES:
                raise _Retry(response)
            return response

        try:
            response = attempt()
        except _Retry as exc:
            raise CrmUnavailable(f"Sage CRM is busy or down: {sage_words(exc.response)}") from None
        except httpx.HTTPError as exc:
            raise CrmUnavailable(
                f"cannot reach Sage CRM's REST API ({type(exc).__name__})"
            ) from None
        if response.status_code == 401:
            raise CrmUnavailable(
                f"Sage CRM refused the login of SAGE_REST_USER {self.user!r} (a wrong password, "
                f"or a disabled, locked or resource user): {sage_words(response)}",
                pause=True,
            )
        if 300 <= response.status_code < 400:
            raise CrmUnavailable(self._redirected(response))
        return response

    def _redirected(self, response: httpx.Response) -> str:
        location = mask_urls(response.headers.get("Location", "")) or "no Location given"
        said = f"Sage CRM's REST API answered HTTP {response.status_code} (moved to {location})"
        if location.startswith("https://") and self.base_url.startswith("http://"):
            return f"{said}: set SAGE_REST_URL to the https address"
        return f"{said}: set SAGE_REST_URL to the address the API answers at"

    def send(
        self,
        calls: Calls,
        method: str,
        path: str,
        body: Mapping[str, object] | None = None,
        answer: dict[str, object] | None = None,
    ) -> str | None:
        """A write; None when Sage took it (200, 201, 204), else why not in Sage's words."""
        response = self.request(calls, method, path, body)
        if response.status_code not in SUCCESS:
            return sage_words(response)
        if answer is not None:
            try:
                got = response.json()
            except ValueError:
                got = {}
            if isinstance(got, dict):
                answer.update(got)
        return None


class SageRestWriter:
    """Writes the changed fields of one person through Sage's REST API: the Person record
    for names and titles, the person's own Email/Phone rows for emails and phones."""

    def __init__(
        self,
        client: SageRestClient,
        crm: SageCrm,
        orphans: OrphanMemory | None = None,
    ) -> None:
        self.rest = client
        self.crm = crm
        self.orphans = orphans
        self._widths: dict[str, int] | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, crm: SageCrm, orphans: OrphanMemory | None = None
    ) -> SageRestWriter:
        return cls(SageRestClient.from_settings(settings), crm, orphans)

    @property
    def base_url(self) -> str:
        return self.rest.base_url

    def describe(self) -> str:
        return f"on, through Sage CRM's REST API at {mask_urls(self.base_url)}"

    def close(self) -> None:
        self.rest.close()

    def widths(self) -> dict[str, int]:
        """'Table.Column' -> width, read from the database once per process."""
        if self._widths is None:
            self._widths = column_widths(self.crm.engine, WRITTEN_TABLES)
        return self._widths

    # -- one person ----------------------------------------------------------------------

    def write(self, person_id: int, changes: Mapping[str, str]) -> CrmWriteResult:
        unknown = sorted(set(changes) - set(PERSON_COLUMNS) - set(LINKED))
        if unknown:
            return CrmWriteResult(f"not a write-back field: {', '.join(unknown)}")
        fields = {k: v for k, v in changes.items() if k in PERSON_COLUMNS}
        linked = {k: v for k, v in changes.items() if k in LINKED}
        rows = self._rows(person_id, kinds_of(linked)) if linked else {}  # no connection else
        writes = row_writes(linked, rows)
        refused = first_too_long(self.widths(), fields, writes.values())
        if refused:
            return CrmWriteResult(refused + OUTLOOK_FIX, refused=refused + OUTLOOK_FIX)
        expected = fields | {name: write.expected for name, write in writes.items()}
        person = {PERSON_COLUMNS[k]: v for k, v in fields.items()}
        calls = Calls()
        try:
            if person:
                error = self.rest.send(calls, "PATCH", f"Person('{person_id}'){READ_BACK}", person)
                if error:
                    return CrmWriteResult(error, calls.n, expected)
            for write in writes.values():
                error = self._write_linked(calls, person_id, write)
                if error:
                    return CrmWriteResult(error, calls.n, expected)
        except CrmUnavailable as exc:
            exc.requests = calls.n
            raise
        return CrmWriteResult(None, calls.n, expected)

    def _rows(self, person_id: int, kinds: set[str]) -> dict[tuple[str, str], LinkedRow]:
        with self.crm._connect() as conn:
            return linked_rows(conn, person_id, kinds)

    def _write_linked(self, calls: Calls, person_id: int, write: RowWrite) -> str | None:
        """Send what row_writes.py decided for one email or phone."""
        entity = RESOURCES[write.kind][0]
        if write.action is Action.KEEP:
            return None
        if write.action is Action.CHANGE and write.row is not None:
            path = f"{entity}('{write.row.row_id}'){READ_BACK}"
            return self.rest.send(calls, "PATCH", path, write.changed)
        if write.action is Action.UNLINK:  # the planner never sends a blank (rule 4)
            return f"a blank {write.name} is not written back"
        return self._own_row(calls, person_id, write)

    def _own_row(self, calls: Calls, person_id: int, write: RowWrite) -> str | None:
        """A row of the person's own, linked to them: made (or one left by an earlier try
        reused), then linked; when the link fails, the row is deleted or remembered."""
        entity, link, prefix, target = RESOURCES[write.kind]
        own = self._reusable(write.kind, person_id, write.link_type)
        if own is not None:
            whole = dict(write.columns)  # all of it: a part the row held before is cleared
            error = self.rest.send(calls, "PATCH", f"{entity}('{own}'){READ_BACK}", whole)
            if error:  # still remembered: the next try reuses it, no second row is made
                return f"{error} (reusing the {entity}('{own}') an earlier try made)"
        else:
            body = {k: v for k, v in write.columns.items() if v}
            created: dict[str, object] = {}
            error = self.rest.send(calls, "POST", f"{entity}{READ_BACK}", body, created)
            if error:
                return error
            key = str(created.get("$key", "")).strip("'\" ")
            if not key.isdigit():
                return f"Sage CRM created the {entity} record but its answer has no $key"
            own = int(key)
        try:
            if write.action is Action.OWN_ROW and write.row is not None:  # move only this link
                path = f"{link}('{write.row.link_id}')"
                error = self.rest.send(calls, "PATCH", path, {target: own})
            else:
                new_link = {
                    f"{prefix}_EntityID": s.PERSON_ENTITY_ID,
                    f"{prefix}_RecordID": person_id,
                    f"{prefix}_Type": write.link_type,
                    target: own,
                }
                error = self.rest.send(calls, "POST", link, new_link)
        except CrmUnavailable:
            self._remember(write.kind, own, person_id, write.link_type)
            raise
        if error is None:
            self._forget(write.kind, own)
            return None
        deleted = self.rest.send(calls, "DELETE", f"{entity}('{own}')") is None
        if deleted and not self._row_live(write.kind, own):  # proven, as every write
            self._forget(write.kind, own)
            return f"{error} (the {entity} record made for it was deleted again)"
        self._remember(write.kind, own, person_id, write.link_type)
        return f"{error} (the {entity}('{own}') made for it could not be deleted; the next try reuses it)"

    def _reusable(self, kind: str, person_id: int, link_type: str) -> int | None:
        """A row an earlier try made and left unlinked, still live and still linked to
        nobody (proven in the database: a row somebody links to now is never changed)."""
        own = self.orphans.find(kind, person_id, link_type) if self.orphans else None
        if own is None:
            return None
        with self.crm._connect() as conn:
            if row_is_live(conn, kind, own) and not live_links(conn, kind, [own]):
                return own
        self._forget(kind, own)
        return None

    def _row_live(self, kind: str, row_id: int) -> bool:
        """Whether the Email/Phone row is there and not marked deleted, in the database."""
        with self.crm._connect() as conn:
            return row_is_live(conn, kind, row_id)

    def _remember(self, kind: str, row_id: int, person_id: int, link_type: str) -> None:
        if self.orphans is not None:
            self.orphans.remember(kind, row_id, person_id, link_type)

    def _forget(self, kind: str, row_id: int) -> None:
        if self.orphans is not None:
            self.orphans.forget(kind, row_id)
