"""The saved picture of the folder and its delta link, between runs."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from sync_engine.mailbox.graph.mapping import CRM_ID_EXTENSION, EXT_READ_AT

log = logging.getLogger(__name__)


class SavedState:
    """The folder's picture on disk (mixed into GraphMailbox)."""

    # ---- the saved picture ----------------------------------------------------------------------

    def _state_file(self) -> Path:
        key = "|".join((self._graph, self._tenant, self._client_id, self.address.lower()))
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        name = re.sub(r"[^A-Za-z0-9@._-]", "_", self.address.lower())
        return self._settings.crm_contacts_home / "graph-delta" / f"{name}-{digest}.json"

    def _load_state(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        try:
            data = json.loads(self._state_path.read_text(encoding="utf-8"))
            contacts = data["contacts"]
            link = data.get("delta_link")
            if not isinstance(contacts, dict) or (link is not None and not isinstance(link, str)):
                raise ValueError("bad shape")
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable sync state %s (%s)", self._state_path, exc)
            return
        if data.get("version", 1) < 2:
            # Pictures saved before issue 20 read only the CRM id, never a fax (Graph wrote
            # none): what they knew counts as read at the item's changeKey.
            for raw in contacts.values():
                if isinstance(raw, dict) and CRM_ID_EXTENSION in raw:
                    raw.setdefault(EXT_READ_AT, raw.get("changeKey"))
        self._cache = contacts
        self._delta_link = link if link and link.startswith(self._origin + "/") else None
        folder = data.get("contacts_folder_id")
        if not self._folder_learned_now:  # else Graph just answered it
            self._contacts_folder_id = folder if isinstance(folder, str) and folder else None
        self._no_delta_since = _when(data.get("no_delta_since"))

    def _save_state(self) -> None:
        """Atomically, readable by this user only: it holds contact details."""
        folder = self._state_path.parent
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        since = self._no_delta_since
        data = {
            "version": 2,
            "address": self.address,
            "graph_url": self._graph,
            "contacts_folder_id": self._contacts_folder_id,
            "delta_link": self._delta_link,
            "no_delta_since": since.isoformat() if since else None,
            "contacts": self._cache,
        }
        tmp = folder / f".{self._state_path.name}.{os.getpid()}.tmp"
        # never through a link planted where the temporary file goes (issue 22.5)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, ensure_ascii=False)
        os.replace(tmp, self._state_path)
        self._dirty = False


def _when(value: object) -> datetime | None:
    """A saved time; None when absent or unreadable (delta is then simply tried)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
