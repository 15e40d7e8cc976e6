"""`crm-contacts teams package`: the zip an admin uploads (manifest.json and two icons).

The manifest follows Microsoft's published schema v1.24 (checked in the tests against
the schema npm `@microsoft/app-manifest` ships); its id and bot id are the bot's Microsoft
App ID, and the domain is the server's public host name."""

from __future__ import annotations

import json
import re
import uuid
import zipfile
from pathlib import Path

from sync_engine.config import ConfigError

HERE = Path(__file__).parent
ICONS = ("color.png", "outline.png")
_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", re.I)


def manifest(app_id: str, domain: str | None) -> dict[str, object]:
    """The manifest with the bot's id and the server's domain filled in."""
    try:
        bot = str(uuid.UUID(app_id.strip()))
    except ValueError:
        raise ConfigError(
            f"'{app_id[:60]}' is not a Microsoft App ID (a GUID such as "
            "00000000-0000-0000-0000-000000000000)"
        ) from None
    host = (domain or "crm-contacts.example.com").strip().lower()
    host = host.removeprefix("https://").removeprefix("http://").rstrip("/")
    if not _HOST.match(host):
        raise ConfigError(f"'{host[:80]}' is not a host name (e.g. crm-contacts.example.com)")
    text = (HERE / "manifest.json").read_text(encoding="utf-8")
    text = text.replace("{{TEAMS_APP_ID}}", bot).replace("{{DOMAIN}}", host)
    return dict(json.loads(text))


def write_package(output: Path, app_id: str, domain: str | None) -> Path:
    data = manifest(app_id, domain)
    output = output.expanduser()
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("manifest.json", json.dumps(data, indent=2, ensure_ascii=False))
            for icon in ICONS:
                zf.write(HERE / icon, icon)
    except OSError as exc:  # a folder, no permission, a full disk: one line, no traceback
        raise ConfigError(
            f"cannot write {output}: {exc.strerror or exc}; give --output a file name "
            "such as crm-contacts-teams.zip"
        ) from None
    return output
