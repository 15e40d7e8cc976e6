"""The saved picture of the folder and its delta link, between runs."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path

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
        self._cache = contacts
        self._delta_link = link if link and link.startswith(self._origin + "/") else None
        self._no_delta = bool(data.get("no_delta"))

    def _save_state(self) -> None:
        """Atomically, readable by this user only: it holds contact details."""
        folder = self._state_path.parent
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = {
            "version": 1,
            "address": self.address,
            "graph_url": self._graph,
            "delta_link": self._delta_link,
            "no_delta": self._no_delta,
            "contacts": self._cache,
        }
        tmp = folder / f".{self._state_path.name}.{os.getpid()}.tmp"
        # never through a link planted where the temporary file goes (issue 22.5)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, ensure_ascii=False)
        os.replace(tmp, self._state_path)
        self._dirty = False
