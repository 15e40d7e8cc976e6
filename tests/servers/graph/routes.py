"""Graph routes: contacts (list, get, create, update, delete) and contact delta."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote, urlencode

from .schema import (
    DEFAULT_FOLDER,
    DELETED_ITEMS,
    FILTER_RE,
    NOT_IN_CLOUD,
    READ_ROLES,
    WRITE_ROLES,
    DeltaState,
    GraphError,
    Reply,
    applied,
    delta_page_size,
    expand_of,
    norm_prop,
    not_found,
    page_size,
    refuse_delta_options,
    require_object,
    select_of,
)


class Routes:
    """One method per route (mixed into GraphServer)."""

    # ---- Graph ------------------------------------------------------------------------------

    def _kind(self, method: str, route: str, query: dict[str, list[str]]) -> str:
        if route == "/$batch":
            return "batch"
        if route.endswith("/delta"):
            return "delta"
        if method == "GET" and route.strip("/").lower() == "users":
            return "users"
        if method == "GET" and route.rstrip("/").endswith("/contacts"):
            return "find" if "$filter" in query else "list"
        if method == "GET" and route.rstrip("/").lower().endswith("/contactfolders"):
            return "folders"
        return {"GET": "get", "POST": "create", "PATCH": "update", "DELETE": "delete"}.get(
            method, "other"
        )

    def _dispatch(
        self,
        method: str,
        route: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: Any,
        roles: frozenset[str],
    ) -> Reply:
        parts = [p for p in route.split("/") if p]
        if [p.lower() for p in parts] == ["users"] and method == "GET":
            with self._lock:
                return self._list_users(query, headers, roles)
        if len(parts) == 2 and parts[0].lower() == "users" and method == "GET":
            with self._lock:
                return self._get_user(parts[1], query, roles)
        if len(parts) < 3 or parts[0].lower() != "users":
            raise GraphError(400, "BadRequest", f"Unsupported segment in {route!r}.")
        address = parts[1]
        rest = [p.lower() for p in parts[2:]]
        self._refuse_non_upn(address)
        write = method in {"POST", "PATCH", "DELETE"}
        if not roles & (WRITE_ROLES if write else READ_ROLES):
            raise GraphError(
                403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
            )
        with self._lock:
            box = self._box(address)
            if not box.exists:
                raise GraphError(
                    404, "ErrorInvalidUser", f"The requested user '{address}' is invalid."
                )
            if box.on_premises:
                raise GraphError(
                    404, NOT_IN_CLOUD, "REST API is not yet supported for this mailbox."
                )
            if box.blocked:
                raise GraphError(
                    403,
                    "ErrorAccessDenied",
                    "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.",
                )
            select = select_of(query)
            expand = expand_of(query)
            if rest == ["contacts"] and method == "GET":
                return self._list(address, query, headers, select, expand)
            if rest == ["contacts"] and method == "POST":
                item = self._create(address, require_object(body), DEFAULT_FOLDER)
                return Reply(201, self._render(box, item["id"], None, None))
            if len(rest) == 2 and rest[0] == "contacts":
                item_id = parts[3]
                if method == "GET":
                    if item_id not in box.items or box.folder[item_id] != DEFAULT_FOLDER:
                        raise not_found()
                    return Reply(200, self._render(box, item_id, select, expand))
                if method == "PATCH":
                    self._update(address, item_id, require_object(body), headers.get("if-match"))
                    return Reply(200, self._render(box, item_id, None, None))
                if method == "DELETE":
                    self._delete(address, item_id, headers.get("if-match"))
                    return Reply(204)
            if rest == ["contactfolders"] and method == "GET":
                return self._child_folders(address, query, select)
            if (
                rest[:1] == ["contactfolders"]
                and rest[-2:] == ["contacts", "delta"]
                and method == "GET"
            ):
                # contact-delta: /contactFolders/{id}/contacts/delta, the folder by its id.
                # The well-known name "contacts" is undocumented for contact folders but
                # answered in practice, so it is served too (tests read `seen` for it).
                folder = parts[3] if len(rest) == 4 else ""
                if folder not in (self.folder_id(address), DEFAULT_FOLDER):
                    raise GraphError(
                        404,
                        "ErrorItemNotFound",
                        "The specified folder could not be found in the store.",
                    )
                return self._delta(address, query, headers, select, expand)
        raise GraphError(405, "BadRequest", f"{method} is not supported on {route!r}.")

    def _list(
        self,
        address: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        select: list[str] | None,
        expand: str | None,
    ) -> Reply:
        box = self._box(address)
        ids = [i for i in box.items if box.folder[i] == DEFAULT_FOLDER]
        ids.sort(key=lambda i: box.items[i]["createdDateTime"])
        if "$filter" in query:
            match = FILTER_RE.match(query["$filter"][0].strip())
            if not match:
                raise GraphError(
                    400,
                    "ErrorInvalidUrlQueryFilter",
                    "The query filter contains one or more invalid nodes.",
                )
            prop, number, text = norm_prop(match.group(2)), match.group(3), match.group(4)
            wanted = number if number is not None else text
            ids = [
                i
                for i in ids
                if prop in box.ext[i] and box.ext[i][prop][1].lower() == (wanted or "").lower()
            ]
        skip = int(query.get("$skip", ["0"])[0])
        size = page_size(query, headers)  # `$top`, or 10: Prefer is for delta
        page = ids[skip : skip + size]
        out: dict[str, Any] = {
            "@odata.context": f"{self.graph_url}/$metadata#users('{quote(address)}')/contacts",
            "value": [self._render(box, i, select, expand) for i in page],
        }
        if query.get("$count", ["false"])[0].lower() == "true":
            out["@odata.count"] = len(ids)
        if skip + size < len(ids):
            params = {k: v[0] for k, v in query.items() if k not in {"$skip", "$top"}}
            params.update({"$top": str(size), "$skip": str(skip + size)})
            out["@odata.nextLink"] = (
                f"{self.graph_url}/users/{quote(address)}/contacts?{urlencode(params)}"
            )
        return Reply(200, out)

    def _child_folders(
        self, address: str, query: dict[str, list[str]], select: list[str] | None
    ) -> Reply:
        """contactfolder-list-childfolders on the default folder: the folders a user made
        under Contacts (the stand-in's other folders), each with its parentFolderId."""
        box = self._box(address)
        names = sorted({f for f in box.folder.values()} - {DEFAULT_FOLDER, DELETED_ITEMS})
        folders = [
            {
                "id": self.folder_id(address, name),
                "displayName": name,
                "parentFolderId": self.folder_id(address),
            }
            for name in names
        ]
        size = page_size(query, {})
        if select:
            folders = [{k: v for k, v in f.items() if k in {"id", *select}} for f in folders]
        return Reply(200, {"value": folders[:size]})

    def _delta(
        self,
        address: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        select: list[str] | None,
        expand: str | None,
    ) -> Reply:
        refuse_delta_options(query)
        if not self.delta_supported:
            raise GraphError(
                400, "ErrorInvalidUrlQuery", "The query parameter is not supported by delta."
            )
        box = self._box(address)
        if "$skiptoken" in query:
            state = self._deltas.pop(query["$skiptoken"][0], None)
            if state is None or state.pending is None:
                raise GraphError(
                    410, "SyncStateNotFound", "The sync state for this request was not found."
                )
            pending = state.pending
        elif "$deltatoken" in query:
            state = self._deltas.get(query["$deltatoken"][0])
            if (
                state is None
                or state.pending is not None
                or state.address != self._user_key(address)
            ):
                raise GraphError(
                    410, "SyncStateNotFound", "The sync state for this request was not found."
                )
            pending = sorted(
                (i for i, s in box.changed.items() if s > state.seq), key=box.changed.__getitem__
            )
            state = DeltaState(
                self._user_key(address),
                box.seq,
                state.select,
                state.expand,
                delta_page_size(headers),
            )
        else:
            pending = [i for i in box.items if box.folder[i] == DEFAULT_FOLDER]
            pending.sort(key=lambda i: box.items[i]["createdDateTime"])
            state = DeltaState(
                self._user_key(address), box.seq, select, expand, delta_page_size(headers)
            )
        size = delta_page_size(headers) if headers.get("prefer") else state.page
        page, rest = pending[:size], pending[size:]
        values = []
        for item_id in page:
            if item_id in box.items and box.folder[item_id] == DEFAULT_FOLDER:
                values.append(self._render(box, item_id, state.select, state.expand))
            else:
                values.append(
                    {
                        "@odata.type": "#microsoft.graph.contact",
                        "id": item_id,
                        "@removed": {"reason": "deleted"},
                    }
                )
        token = secrets.token_urlsafe(18)
        folder = f"{self.graph_url}/users/{quote(address)}/contactFolders/{self.folder_id(address)}"
        link = f"{folder}/contacts/delta"
        out: dict[str, Any] = {
            "@odata.context": f"{self.graph_url}/$metadata#Collection(contact)",
            "value": values,
        }
        if rest:
            self._deltas[token] = DeltaState(
                state.address, state.seq, state.select, state.expand, state.page, rest
            )
            out["@odata.nextLink"] = f"{link}?%24skiptoken={token}"
        else:
            self._deltas[token] = DeltaState(
                state.address, state.seq, state.select, state.expand, state.page
            )
            out["@odata.deltaLink"] = f"{link}?%24deltatoken={token}"
        return Reply(200, out, applied(headers, size))
