"""`crm-contacts teams package`: the zip an admin uploads, its manifest valid against
Microsoft's published schema (npm `@microsoft/app-manifest`, installed by `npm ci`), and
the Teams settings refused in one line when they cannot work."""

from __future__ import annotations

import json
import os
import struct
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = (
    ROOT / "node_modules/@microsoft/app-manifest/build/json-schemas/teams/v1.24/"
    "MicrosoftTeams.schema.json"
)
APP_ID = "3f0c8a52-6b1d-4d7e-9f20-5a1b2c3d4e5f"


@pytest.fixture
def crm_contacts(cli, monkeypatch):  # type: ignore[no-untyped-def]
    """`crm-contacts` in this process with every front end's commands (web.cli:main's)."""
    import web.cli  # noqa: F401 - registers `teams package` and the Teams hooks

    def run(*args: str, **env: str):  # type: ignore[no-untyped-def]
        for name in [n for n in os.environ if n.startswith(("TEAMS_", "SLACK_"))]:
            monkeypatch.delenv(name)  # each call sees only its own settings
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return cli(*args)

    return run


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_package_holds_a_manifest_valid_against_microsofts_schema(
    crm_contacts, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    if not SCHEMA.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("node_modules/@microsoft/app-manifest is missing; run npm ci")
        pytest.skip("node_modules/@microsoft/app-manifest is missing (npm ci)")
    import jsonschema

    out = tmp_path / "app.zip"
    done = crm_contacts(
        "teams", "package", "--app-id", APP_ID, "--domain", "crm.contoso.com", "-o", str(out)
    )
    assert done.code == 0, done.err
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
    assert {"search", "add-group", "list", "sync", "digest", "rules", "help"} <= set(commands)
    # …and a manifest the schema refuses is caught by this check
    for broken in (
        {**manifest, "manifestVersion": "9.9"},
        {k: v for k, v in manifest.items() if k != "developer"},
        {**manifest, "bots": [{**manifest["bots"][0], "scopes": ["everywhere"]}]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validator(schema).validate(broken)


def test_bad_teams_settings_and_package_input_are_one_line(crm_contacts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad_id = crm_contacts(
        "teams", "package", "--app-id", "not-a-guid", "-o", str(tmp_path / "x.zip")
    )
    assert bad_id.code == 1 and "not a Microsoft App ID" in bad_id.err
    assert "Traceback" not in bad_id.err and len(bad_id.err.strip().splitlines()) == 1
    into_a_folder = crm_contacts("teams", "package", "--app-id", APP_ID, "-o", str(tmp_path))
    assert into_a_folder.code == 1 and str(tmp_path) in into_a_folder.err
    assert "Traceback" not in into_a_folder.err
    assert len(into_a_folder.err.strip().splitlines()) == 1
    no_tenant = crm_contacts("serve", TEAMS_APP_ID=APP_ID, TEAMS_APP_PASSWORD="secret", PORT="0")
    assert no_tenant.code == 1 and "TEAMS_TENANT_ID is not set" in no_tenant.err
    assert "Traceback" not in no_tenant.err
    no_secret = crm_contacts("serve", TEAMS_APP_ID=APP_ID, TEAMS_TENANT_ID=APP_ID, PORT="0")
    assert no_secret.code == 1 and "TEAMS_APP_PASSWORD or TEAMS_CERTIFICATE_PATH" in no_secret.err
    clock = crm_contacts("scheduler", "--once", TEAMS_APP_ID=APP_ID, TEAMS_APP_PASSWORD="x")
    assert clock.code == 1 and "TEAMS_TENANT_ID is not set" in clock.err  # not silence
    assert "Traceback" not in clock.err
    nothing = crm_contacts("serve", PORT="0")
    assert nothing.code == 1 and "SLACK_BOT_TOKEN is not set" in nothing.err
