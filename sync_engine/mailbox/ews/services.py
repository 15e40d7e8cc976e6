"""exchangelib's services, one HTTP request per call, counted: every private member we use.

exchangelib builds and parses the EWS XML for us, but its public API retries on its own,
guesses versions, fetches the folder hierarchy before addressing a folder, rewrites
indexed fields whole and raises on the first unexpected per-item error. To keep round
trips ours to count and per-item answers whole, we lean on members exchangelib does not
promise to keep. They are all here, each with a comment saying why, and pyproject.toml
pins exchangelib to the versions the tests ran against (an upper bound): a new
exchangelib is let in only after tests/test_ews_mailbox.py passes against it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from exchangelib import Account, Contact, OAuth2Credentials
from exchangelib.errors import ErrorNonPrimarySmtpAddress, ErrorServerBusy, TransportError
from exchangelib.folders import Contacts, DeletedItems
from exchangelib.properties import DistinguishedFolderId, Mailbox
from exchangelib.restriction import Q, Restriction
from exchangelib.services import (
    CreateItem,
    DeleteItem,
    FindItem,
    GetFolder,
    GetItem,
    MoveItem,
    ResolveNames,
    UpdateItem,
)
from exchangelib.services.common import EWSService
from exchangelib.util import ENS, TNS

if TYPE_CHECKING:
    from sync_engine.mailbox.ews.mailbox import EwsMailbox


class CountedService:
    """Mixin for exchangelib services: count each POST, no internal retries or guessing."""

    # Private 1: the exception types a service hands back per item instead of raising.
    # TransportError is exchangelib's base for unknown response codes too, so every
    # per-item answer is kept (an error on one item fails that item only).
    ERRORS_TO_CATCH_IN_RESPONSE = TransportError
    counter: EwsMailbox

    # Private 2: the one method that POSTs; overridden to count each round trip.
    def _get_response(self, payload: Any, api_version: str) -> Any:
        self.counter._count()
        return super()._get_response(payload=payload, api_version=api_version)  # type: ignore[misc]

    # Private 3: exchangelib's retry-and-re-post loop; replaced by one attempt, because
    # EwsMailbox._call retries with its own bounded back-off. Private 4: the generator
    # that parses one response.
    def _get_elements(self, payload: Any) -> Iterator[Any]:
        yield from self._response_generator(payload=payload)  # type: ignore[attr-defined]

    # Private 5: the list of API versions exchangelib would try one after another.
    # Private 6: `_version_hint`, the configured version. A wrong version is a
    # configuration error, not a guessing game of extra requests.
    def _api_versions_to_try(self) -> tuple[str, ...]:
        return (self._version_hint.api_version,)  # type: ignore[attr-defined]

    # Private 13: the parser of one ResponseMessage's error. exchangelib reads MessageXml
    # only for some codes: here the two values we act on are kept on the exception, for a
    # per-item error inside a batch as for the whole request (below).
    @staticmethod
    def _get_exception(code: Any, text: Any, msg_xml: Any = None, rule_errors: Any = None) -> Any:
        exc = EWSService._get_exception(
            code=code, text=text, msg_xml=msg_xml, rule_errors=rule_errors
        )
        return with_message_xml(exc, msg_xml)

    # Private 14: the parser of a SOAP fault (a request-level error); the impersonation
    # header naming an alias fails the whole request with ErrorNonPrimarySmtpAddress.
    @classmethod
    def _raise_soap_errors(cls, fault: Any) -> None:
        try:
            super()._raise_soap_errors(fault=fault)  # type: ignore[misc]
        except (ErrorNonPrimarySmtpAddress, ErrorServerBusy) as exc:
            detail = fault.find("detail")
            msg_xml = None
            if detail is not None:  # exchangelib looks in types; Exchange also uses errors
                msg_xml = detail.find(f"{{{TNS}}}MessageXml")
                if msg_xml is None:
                    msg_xml = detail.find(f"{{{ENS}}}MessageXml")
            raise with_message_xml(exc, msg_xml) from None


def with_message_xml(exc: Any, msg_xml: Any) -> Any:
    """Keep what MessageXml says on the exception (messages.xsd: MessageXml holds
    <t:Value Name="...">): an alias's primary SMTP address (ErrorNonPrimarySmtpAddress,
    Name="Primary") and how long a busy server asks to wait (ErrorServerBusy,
    Name="BackOffMilliseconds"). Other exceptions pass through unchanged."""
    if msg_xml is None or not isinstance(exc, ErrorNonPrimarySmtpAddress | ErrorServerBusy):
        return exc
    values = {v.get("Name"): (v.text or "").strip() for v in msg_xml.iter(f"{{{TNS}}}Value")}
    if isinstance(exc, ErrorNonPrimarySmtpAddress) and values.get("Primary"):
        exc.primary_smtp_address = values["Primary"].lower()
    if isinstance(exc, ErrorServerBusy) and not exc.back_off:
        with contextlib.suppress(ValueError):
            exc.back_off = int(values.get("BackOffMilliseconds", "")) / 1000.0
    return exc


class CountedFindItem(CountedService, FindItem):
    pass


class CountedGetItem(CountedService, GetItem):
    pass


class CountedGetFolder(CountedService, GetFolder):
    pass


class CountedCreateItem(CountedService, CreateItem):
    pass


class CountedDeleteItem(CountedService, DeleteItem):
    pass


class CountedMoveItem(CountedService, MoveItem):
    pass


class CountedResolveNames(CountedService, ResolveNames):
    pass


class CountedUpdateItem(CountedService, UpdateItem):
    """UpdateItem with exactly the SetItemField / DeleteItemField elements we name."""

    # Private 7: exchangelib's builder of one item's update elements, which rewrites an
    # indexed field whole (setting EmailAddress1 would delete EmailAddress2/3). Private 8
    # and 9: its builders of one SetItemField / DeleteItemField element, used as they are.
    def _update_elems(self, target: Any, fieldnames: Any) -> Iterator[Any]:
        for op, path, value in fieldnames:
            if op == "set":
                yield self._set_field_elem(target_model=Contact, field_path=path, value=value)
            else:
                yield self._delete_field_elem(field_path=path)


class FolderRoot:
    """Just enough of a folder root for exchangelib to address a distinguished folder
    without first fetching the folder hierarchy (which would cost two GetFolder calls)."""

    def __init__(self, account: Account) -> None:
        self.account = account


def contacts_folder(account: Account, address: str) -> Contacts:
    """The default Contacts folder of `address`, addressed by its distinguished id."""
    # Private 10: the `_distinguished_id` field, which makes exchangelib send
    # <t:DistinguishedFolderId Id="contacts"><t:Mailbox>…</t:Mailbox> (messages.xsd
    # BaseFolderIdType) without a GetFolder first; `root` is duck-typed (FolderRoot).
    return Contacts(
        _distinguished_id=DistinguishedFolderId(
            id=Contacts.DISTINGUISHED_FOLDER_ID,
            mailbox=Mailbox(email_address=address),
        ),
        root=FolderRoot(account),
    )


def deleted_items_folder(account: Account, address: str) -> DeletedItems:
    """The mailbox's Deleted Items folder, addressed like `contacts_folder` (Private 10)."""
    return DeletedItems(
        _distinguished_id=DistinguishedFolderId(
            id=DeletedItems.DISTINGUISHED_FOLDER_ID,
            mailbox=Mailbox(email_address=address),
        ),
        root=FolderRoot(account),
    )


def find_one_page(
    service: CountedFindItem, kwargs: dict[str, Any]
) -> tuple[Any, int | None, list[Any]]:
    """One FindItem request for one page: (the RootFolder element or an exception or None,
    the next offset or None at the end, the parsed items or per-item exceptions)."""
    # Private 11: `_get_pages` sends exactly one request for one page and reports the
    # next offset; the public `call()` would page on by itself until the folder ends.
    # `call()` also sets these two attributes, which parsing the page reads; set them here.
    service.additional_fields = kwargs["additional_fields"]
    service.shape = kwargs["shape"]
    [(page, next_offset)] = service._get_pages(service.get_payload, kwargs, 1)
    if isinstance(page, Exception) or page is None:
        return page, None, []
    # Private 12: `_get_elems_from_page` picks the items out of the page, and
    # `_elems_to_objs` parses them into Contacts (or hands back per-item exceptions).
    objs = list(service._elems_to_objs(service._get_elems_from_page(page, None, 0)))
    return page, next_offset, objs


class OAuthCredentials(OAuth2Credentials):
    """Client-credentials OAuth against GRAPH_AUTHORITY, for the EWS resource of EWS_URL."""

    def __init__(self, *, authority: str, resource: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.authority = authority.rstrip("/")
        origin = re.match(r"https?://[^/]+", resource or "")
        self.resource = origin.group(0) if origin else "https://outlook.office365.com"

    @property
    def token_url(self) -> str:
        return f"{self.authority}/{self.tenant_id or 'common'}/oauth2/v2.0/token"

    @property
    def scope(self) -> list[str]:
        return [f"{self.resource}/.default"]


def items_restriction(query: Q, folder: Contacts) -> Any:
    """A FindItem restriction (exchangelib's Restriction) on the folder's items."""
    return Restriction(query, folders=[folder], applies_to=Restriction.ITEMS)
