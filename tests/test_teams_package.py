"""`crm-contacts teams package`: the zip an admin uploads, its manifest valid against
Microsoft's published schema (npm `@microsoft/app-manifest`, installed by `npm ci`), and
the Teams settings refused in one line when they cannot work."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = (
    ROOT / "node_modules/@microsoft/app-manifest/build/json-schemas/teams/v1.24/"
    "MicrosoftTeams.schema.json"
)
APP_ID = "3f0c8a52-6b1d-4d7e-9f20-5a1b2c3d4e5f"


def run(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed `crm-contacts` (web.cli:main, the entry point with Teams)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("TEAMS_", "SLACK_"))}
    full.update(CRM_CONTACTS_HOME=str(home), **env)
    exe = str(Path(sys.executable).parent / "crm-contacts")
    return subprocess.run([exe, *args], env=full, capture_output=True, text=True, timeout=60)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_package_holds_a_manifest_valid_against_microsofts_schema(
    home: Path, tmp_path: Path
) -> None:
    if not SCHEMA.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("node_modules/@microsoft/app-manifest is missing; run npm ci")
        pytest.skip("node_modules/@microsoft/app-manifest is missing (npm ci)")
    import jsonschema

    out = tmp_path / "app.zip"
    done = run(
        home, "teams", "package", "--app-id", APP_ID, "--domain", "crm.contoso.com", "-o", str(out)
    )
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(zf.read("manifest.json"))
        # Teams' icon rules: a 192×192 colour icon and a 32×32 outline
        assert png_size(zf.read("color.png")) == (192, 192)
        assert png_size(zf.read("outline.png")) == (32, 32)
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    # The schema says draft-04 but also uses `const` (draft-06), as for manifestVersion:
    # held too, as Microsoft's validator holds it.
    validator = jsonschema.validators.extend(
        jsonschema.Draft4Validator, {"const": jsonschema.Draft7Validator.VALIDATORS["const"]}
    )
    validator(schema).validate(manifest)
    assert manifest["id"] == APP_ID and manifest["bots"][0]["botId"] == APP_ID
    assert manifest["composeExtensions"][0]["botId"] == APP_ID
    assert manifest["validDomains"] == ["crm.contoso.com"]
    commands = [c["title"] for c in manifest["bots"][0]["commandLists"][0]["commands"]]
    assert {"search", "add-group", "list", "sync", "digest", "help"} <= set(commands)
    # …and a manifest the schema refuses is caught by this check
    for broken in (
        {**manifest, "manifestVersion": "9.9"},
        {k: v for k, v in manifest.items() if k != "developer"},
        {**manifest, "bots": [{**manifest["bots"][0], "scopes": ["everywhere"]}]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validator(schema).validate(broken)


def test_bad_teams_settings_and_package_input_are_one_line(home: Path, tmp_path: Path) -> None:
    bad_id = run(home, "teams", "package", "--app-id", "not-a-guid", "-o", str(tmp_path / "x.zip"))
    assert bad_id.returncode == 1 and "not a Microsoft App ID" in bad_id.stderr
    assert "Traceback" not in bad_id.stderr and len(bad_id.stderr.strip().splitlines()) == 1
    no_tenant = run(home, "serve", TEAMS_APP_ID=APP_ID, TEAMS_APP_PASSWORD="secret", PORT="0")
    assert no_tenant.returncode == 1 and "TEAMS_TENANT_ID is not set" in no_tenant.stderr
    assert "Traceback" not in no_tenant.stderr
    no_secret = run(home, "serve", TEAMS_APP_ID=APP_ID, TEAMS_TENANT_ID=APP_ID, PORT="0")
    assert (
        no_secret.returncode == 1
        and "TEAMS_APP_PASSWORD or TEAMS_CERTIFICATE_PATH" in no_secret.stderr
    )
    nothing = run(home, "serve", PORT="0")
    assert nothing.returncode == 1 and "SLACK_BOT_TOKEN is not set" in nothing.stderr
