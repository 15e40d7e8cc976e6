"""The EWS operations served: GetFolder, FindItem, GetItem, CreateItem, UpdateItem, DeleteItem."""

from __future__ import annotations

import base64
import contextlib
from typing import Any

from lxml import etree

from .schema import (
    DISPOSAL_TYPES,
    READ_ONLY,
    USERNAME,
    ItemError,
    M,
    SoapFault,
    StoredItem,
    T,
    local_name,
    mailbox_stub,
    matches,
    parse_contact,
    path_key,
)


class Operations:
    """One method per operation (mixed into EwsServer)."""

    # -- target mailbox -----------------------------------------------------------------

    def _target(self, impersonated: str | None, mailbox_elem: Any = None) -> str:
        """Whose mailbox a request acts on: the impersonated user, or a delegate's target."""
        if impersonated:
            return impersonated
        owner = USERNAME
        if mailbox_elem is not None:
            owner = (mailbox_elem.findtext(f"{{{T}}}EmailAddress") or USERNAME).lower()
        self._refuse_alias(owner, per_item=True)
        if owner != USERNAME and owner in self._denied_delegate:
            raise ItemError("ErrorAccessDenied")
        return owner

    def _item_owner(self, item_id: str) -> str | None:
        with contextlib.suppress(ValueError, IndexError):
            raw = base64.b64decode(item_id[5:]).decode()
            return raw.split("\0")[0]
        return None

    def _find_item(self, impersonated: str | None, id_elem: Any) -> StoredItem:
        item_id = id_elem.get("Id") or ""
        owner = self._item_owner(item_id)
        if owner is None:
            raise ItemError("ErrorInvalidIdMalformed", "Id is malformed.")
        if impersonated and owner != impersonated:
            raise ItemError("ErrorItemNotFound")
        if not impersonated and owner != USERNAME and owner in self._denied_delegate:
            raise ItemError("ErrorAccessDenied")
        item = self._box(owner).get(item_id)
        if item is None:
            raise ItemError("ErrorItemNotFound")
        return item

    def _folder_mailbox(self, impersonated: str | None, folder_ids: Any) -> str:
        for fid in folder_ids:
            if local_name(fid) == "DistinguishedFolderId":
                if fid.get("Id") not in ("contacts", "root", "msgfolderroot", "deleteditems"):
                    raise ItemError(
                        "ErrorFolderNotFound", "The specified folder could not be found."
                    )
                return self._target(impersonated, fid.find(f"{{{T}}}Mailbox"))
            if local_name(fid) == "FolderId":
                owner = self._folder_owner(fid.get("Id") or "")
                return self._target(impersonated, mailbox_stub(owner))
        raise SoapFault("ErrorSchemaValidation", "no folder id")

    @staticmethod
    def _folder_id(address: str, name: str) -> str:
        return "AQMkA" + base64.b64encode(f"{address}\0folder\0{name}".encode()).decode()

    def _folder_owner(self, folder_id: str) -> str:
        with contextlib.suppress(ValueError, IndexError):
            address, _, name = base64.b64decode(folder_id[5:]).decode().split("\0")
            if name == "contacts":
                return address
        raise ItemError("ErrorFolderNotFound", "The specified folder could not be found.")

    def _item_answer(self, operation: str, item: StoredItem) -> Any:
        """A success message carrying the item's id and change key (messages.xsd
        ItemInfoResponseMessageType: <m:Items><t:Contact><t:ItemId/>)."""
        msg = self._message(operation)
        contact = etree.SubElement(etree.SubElement(msg, f"{{{M}}}Items"), f"{{{T}}}Contact")
        etree.SubElement(contact, f"{{{T}}}ItemId", Id=item.item_id, ChangeKey=item.change_key)
        return msg

    # -- operations ---------------------------------------------------------------------

    def _op_GetFolder(self, request: Any, impersonated: str | None) -> list[Any]:
        out = []
        for fid in request.find(f"{{{M}}}FolderIds"):
            msg = self._message("GetFolder")
            try:
                owner = self._folder_mailbox(impersonated, [fid])
                name = fid.get("Id") if local_name(fid) == "DistinguishedFolderId" else "contacts"
                box = self._box(owner)
                tag = "ContactsFolder" if name == "contacts" else "Folder"
                folder = etree.Element(f"{{{T}}}{tag}")
                etree.SubElement(
                    folder,
                    f"{{{T}}}FolderId",
                    Id=self._folder_id(owner, name),
                    ChangeKey="AQAAAA==",
                )
                etree.SubElement(
                    folder,
                    f"{{{T}}}ParentFolderId",
                    Id=self._folder_id(owner, "root"),
                    ChangeKey="AQAAAA==",
                )
                cls = "IPF.Contact" if name == "contacts" else ""
                if cls:
                    etree.SubElement(folder, f"{{{T}}}FolderClass").text = cls
                display = {
                    "contacts": "Contacts",
                    "root": "",
                    "msgfolderroot": "Top of Information Store",
                }
                etree.SubElement(folder, f"{{{T}}}DisplayName").text = display.get(name, name)
                count = len(box) if name == "contacts" else 0
                etree.SubElement(folder, f"{{{T}}}TotalCount").text = str(count)
                etree.SubElement(folder, f"{{{T}}}ChildFolderCount").text = "0"
                rights = etree.SubElement(folder, f"{{{T}}}EffectiveRights")
                for right, value in (
                    ("CreateAssociated", "true"),
                    ("CreateContents", "true"),
                    ("CreateHierarchy", "true"),
                    ("Delete", "true"),
                    ("Modify", "true"),
                    ("Read", "true"),
                ):
                    etree.SubElement(rights, f"{{{T}}}{right}").text = value
                if name != "contacts":
                    etree.SubElement(folder, f"{{{T}}}UnreadCount").text = "0"
                folders = etree.SubElement(msg, f"{{{M}}}Folders")
                folders.append(folder)
            except ItemError as error:
                msg = self._message("GetFolder", error)
            out.append(msg)
        return out

    def _op_FindItem(self, request: Any, impersonated: str | None) -> list[Any]:
        if request.get("Traversal") != "Shallow":
            raise SoapFault("ErrorInvalidRequest", "only Shallow traversal is served")
        shape = request.find(f"{{{M}}}ItemShape")
        view = request.find(f"{{{M}}}IndexedPageItemView")
        restriction = request.find(f"{{{M}}}Restriction")
        sort = request.find(f"{{{M}}}SortOrder")
        parents = request.find(f"{{{M}}}ParentFolderIds")
        out = []
        for parent in parents:
            try:
                owner = self._folder_mailbox(impersonated, [parent])
                items = sorted(self._box(owner).values(), key=lambda i: (i.created, i.item_id))
            except ItemError as error:
                msg = self._message("FindItem", error)
                out.append(msg)
                continue
            if restriction is not None:
                items = [i for i in items if matches(i, restriction[0])]
            if sort is not None:
                for order in reversed(list(sort)):
                    key = path_key(order[0])
                    items.sort(
                        key=lambda i, k=key: (
                            str(i.props.get(k, ""))
                            if k[1] != "item:DateTimeCreated"
                            else i.created.isoformat()
                        ),
                        reverse=order.get("Order") == "Descending",
                    )
            offset = int(view.get("Offset", "0")) if view is not None else 0
            size = int(view.get("MaxEntriesReturned", "1000")) if view is not None else 1000
            size = min(size, self.page_limit)
            page = items[offset : offset + size]
            last = offset + len(page) >= len(items)
            msg = self._message("FindItem")
            root = etree.SubElement(
                msg,
                f"{{{M}}}RootFolder",
                IndexedPagingOffset=str(offset + len(page)),
                TotalItemsInView=str(len(items)),
                IncludesLastItemInRange="true" if last else "false",
            )
            container = etree.SubElement(root, f"{{{T}}}Items")
            for item in page:
                container.append(self._render(item, shape, find=True))
            out.append(msg)
        return out

    def _op_GetItem(self, request: Any, impersonated: str | None) -> list[Any]:
        shape = request.find(f"{{{M}}}ItemShape")
        out = []
        for id_elem in request.find(f"{{{M}}}ItemIds"):
            try:
                item = self._find_item(impersonated, id_elem)
                msg = self._message("GetItem")
                etree.SubElement(msg, f"{{{M}}}Items").append(self._render(item, shape))
            except ItemError as error:
                msg = self._message("GetItem", error)
                etree.SubElement(msg, f"{{{M}}}Items")
            out.append(msg)
        return out

    def _op_CreateItem(self, request: Any, impersonated: str | None) -> list[Any]:
        target = request.find(f"{{{M}}}SavedItemFolderId")
        items = request.find(f"{{{M}}}Items")
        fault = self._take_fault("CreateItem", {"item_error", "item_busy"})
        out = []
        try:
            owner = self._folder_mailbox(impersonated, list(target) if target is not None else [])
        except ItemError as error:
            return [self._message("CreateItem", error) for _ in items]
        for index, elem in enumerate(items):
            try:
                if local_name(elem) != "Contact":
                    raise SoapFault("ErrorSchemaValidation", f"{local_name(elem)} is not a contact")
                if fault is not None and fault.item_index == index:
                    raise fault.item_error()
                props = parse_contact(elem)
                msg = self._item_answer("CreateItem", self._new_item(owner, props))
            except ItemError as error:
                msg = self._message("CreateItem", error)
                etree.SubElement(msg, f"{{{M}}}Items")
            out.append(msg)
        return out

    def _op_UpdateItem(self, request: Any, impersonated: str | None) -> list[Any]:
        resolution = request.get("ConflictResolution", "AutoResolve")
        fault = self._take_fault("UpdateItem", {"item_error", "item_busy"})
        out = []
        for index, change in enumerate(request.find(f"{{{M}}}ItemChanges")):
            try:
                id_elem = change.find(f"{{{T}}}ItemId")
                item = self._find_item(impersonated, id_elem)
                if fault is not None and fault.item_index == index:
                    raise fault.item_error()
                sent_key = id_elem.get("ChangeKey")
                if sent_key and sent_key != item.change_key and resolution != "AlwaysOverwrite":
                    raise ItemError("ErrorIrresolvableConflict")
                updated = dict(item.props)
                for update in change.find(f"{{{T}}}Updates"):
                    kind = local_name(update)
                    key = path_key(update[0])
                    if key[0] == "f" and key[1] in READ_ONLY:
                        raise ItemError("ErrorInvalidPropertySet", f"{key[1]} is read-only")
                    if kind == "DeleteItemField":
                        updated.pop(key, None)
                    elif kind in ("SetItemField", "AppendToItemField"):
                        values = parse_contact(update.find(f"{{{T}}}Contact"))
                        if key not in values:
                            raise SoapFault(
                                "ErrorSchemaValidation", f"SetItemField value does not match {key}"
                            )
                        updated[key] = values[key]
                    else:
                        raise SoapFault("ErrorSchemaValidation", f"unexpected {kind}")
                item.props = updated
                self._touch(item)
                msg = self._item_answer("UpdateItem", item)
                etree.SubElement(
                    etree.SubElement(msg, f"{{{M}}}ConflictResults"), f"{{{T}}}Count"
                ).text = "0"
            except ItemError as error:
                msg = self._message("UpdateItem", error)
                etree.SubElement(msg, f"{{{M}}}Items")
            out.append(msg)
        return out

    def _op_DeleteItem(self, request: Any, impersonated: str | None) -> list[Any]:
        disposal = request.get("DeleteType")
        if disposal not in DISPOSAL_TYPES:  # messages.xsd: required, t:DisposalType
            raise SoapFault(
                "ErrorSchemaValidation",
                f"The request failed schema validation: DeleteType {disposal!r} is not one of "
                f"{', '.join(DISPOSAL_TYPES)}.",
            )
        fault = self._take_fault("DeleteItem", {"item_error", "item_busy"})
        out = []
        for index, id_elem in enumerate(request.find(f"{{{M}}}ItemIds")):
            try:
                item = self._find_item(impersonated, id_elem)
                if fault is not None and fault.item_index == index:
                    raise fault.item_error()
                owner = self._item_owner(item.item_id) or ""
                if disposal == "MoveToDeletedItems" and not impersonated and owner != USERNAME:
                    # DeleteItem operation reference: a delegate deleting an item in the
                    # principal's mailbox with MoveToDeletedItems gets ErrorCannotDeleteObject;
                    # "a delegate must use the MoveItem operation".
                    raise ItemError("ErrorCannotDeleteObject")
                gone = self._box(owner).pop(item.item_id)
                self.delete_types[disposal] += 1
                if disposal == "MoveToDeletedItems":  # the user can restore it from there
                    self._deleted.setdefault(owner, {})[item.item_id] = gone
                out.append(self._message("DeleteItem"))
            except ItemError as error:
                out.append(self._message("DeleteItem", error))
        return out

    def _op_MoveItem(self, request: Any, impersonated: str | None) -> list[Any]:
        """MoveItem to a mailbox's Deleted Items (the only move the engine makes): messages.xsd
        MoveItemType, ToFolderId then ItemIds; each answer carries the moved item's new id."""
        to = request.find(f"{{{M}}}ToFolderId")
        folder = to[0] if to is not None and len(to) else None
        if folder is None or folder.get("Id") != "deleteditems":
            raise SoapFault("ErrorInvalidRequest", "only moves to deleteditems are served here")
        out = []
        for id_elem in request.find(f"{{{M}}}ItemIds"):
            try:
                item = self._find_item(impersonated, id_elem)
                owner = self._item_owner(item.item_id) or ""
                target = self._folder_mailbox(impersonated, [folder])
                if target != owner:
                    raise ItemError("ErrorMoveCopyFailed", "The item is in another mailbox.")
                gone = self._box(owner).pop(item.item_id)
                self.moved_to_deleted_items += 1
                self._deleted.setdefault(owner, {})[item.item_id] = gone
                self._touch(gone)
                msg = self._item_answer("MoveItem", gone)
            except ItemError as error:
                msg = self._message("MoveItem", error)
                etree.SubElement(msg, f"{{{M}}}Items")
            out.append(msg)
        return out

    def _op_ResolveNames(self, request: Any, impersonated: str | None) -> list[Any]:
        """ResolveNames of an address-book (EX) address, as the engine asks it: messages.xsd
        ResolveNamesType holds exactly one UnresolvedEntry. The directory is what the test
        gave `add_directory_entry`; no match is ErrorNameResolutionNoResults."""
        entries = request.findall(f"{{{M}}}UnresolvedEntry")
        if len(entries) != 1 or request.get("ReturnFullContactData") is None:
            raise SoapFault("ErrorSchemaValidation", "ResolveNames takes one UnresolvedEntry")
        wanted = (entries[0].text or "").strip().lower().removeprefix("ex:")
        found = self._directory.get(wanted)
        if found is None:
            return [self._message("ResolveNames", ItemError("ErrorNameResolutionNoResults"))]
        name, smtp = found
        msg = self._message("ResolveNames")
        rset = etree.SubElement(
            msg,
            f"{{{M}}}ResolutionSet",
            TotalItemsInView="1",
            IncludesLastItemInRange="true",
        )
        mailbox = etree.SubElement(etree.SubElement(rset, f"{{{T}}}Resolution"), f"{{{T}}}Mailbox")
        etree.SubElement(mailbox, f"{{{T}}}Name").text = name
        etree.SubElement(mailbox, f"{{{T}}}EmailAddress").text = smtp
        etree.SubElement(mailbox, f"{{{T}}}RoutingType").text = "SMTP"
        etree.SubElement(mailbox, f"{{{T}}}MailboxType").text = "Mailbox"
        return [msg]
