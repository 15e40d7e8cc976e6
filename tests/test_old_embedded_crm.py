"""A CRM_CONTACTS_HOME made by the release before the Sage 7.1+ layout: its embedded demo
CRM has the old tables (Person carries Pers_EmailAddress and the phone columns, no
Email/EmailLink, Users without User_Disabled/User_Resource/User_IsTemplate). The demo
recreates it; other commands say so in one line; a CRM the user configured is never touched."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

# The old tables, as `git show f279653:sync_engine/crm/schema.py` declared them.
OLD_LAYOUT = """
CREATE TABLE Users (User_UserId INTEGER PRIMARY KEY, User_Logon VARCHAR(60),
  User_FirstName VARCHAR(60), User_LastName VARCHAR(60), User_EmailAddress VARCHAR(255),
  User_Deleted INTEGER);
CREATE TABLE Company (Comp_CompanyId INTEGER PRIMARY KEY, Comp_Name VARCHAR(255),
  Comp_PrimaryUserId INTEGER, Comp_UpdatedDate DATETIME, Comp_Deleted INTEGER);
CREATE TABLE Address (Addr_AddressId INTEGER PRIMARY KEY, Addr_Address1 VARCHAR(255),
  Addr_Address2 VARCHAR(255), Addr_Address3 VARCHAR(255), Addr_Address4 VARCHAR(255),
  Addr_City VARCHAR(60), Addr_State VARCHAR(60), Addr_PostCode VARCHAR(20),
  Addr_Country VARCHAR(60), Addr_Deleted INTEGER);
CREATE TABLE Person (Pers_PersonId INTEGER PRIMARY KEY, Pers_CompanyId INTEGER,
  Pers_PrimaryUserId INTEGER, Pers_PrimaryAddressId INTEGER, Pers_Salutation VARCHAR(20),
  Pers_FirstName VARCHAR(60), Pers_MiddleName VARCHAR(60), Pers_LastName VARCHAR(60),
  Pers_Suffix VARCHAR(20), Pers_Title VARCHAR(120), Pers_Department VARCHAR(120),
  Pers_EmailAddress VARCHAR(255), Pers_PhoneCountryCode VARCHAR(10),
  Pers_PhoneAreaCode VARCHAR(10), Pers_PhoneNumber VARCHAR(40), Pers_WebSite VARCHAR(255),
  Pers_CreatedDate DATETIME, Pers_UpdatedDate DATETIME, Pers_Deleted INTEGER);
CREATE TABLE Phone (Phon_PhoneId INTEGER PRIMARY KEY, Phon_CountryCode VARCHAR(10),
  Phon_AreaCode VARCHAR(10), Phon_Number VARCHAR(40), Phon_Deleted INTEGER);
CREATE TABLE PhoneLink (PLink_LinkId INTEGER PRIMARY KEY, PLink_EntityID INTEGER,
  PLink_RecordID INTEGER, PLink_Type VARCHAR(40), PLink_PhoneId INTEGER, PLink_Deleted INTEGER);
INSERT INTO Users VALUES (1, 'alice', 'Alice', 'Smith', 'alice@example.com', NULL);
INSERT INTO Person (Pers_PersonId, Pers_FirstName, Pers_LastName, Pers_EmailAddress,
  Pers_PrimaryUserId) VALUES (1, 'Old', 'Person', 'old@example.com', 1);
"""


def old_crm(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_LAYOUT)
    conn.close()
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_other_commands_name_the_file_and_the_way_out(cli, home):
    crm = old_crm(home / "crm.sqlite")
    result = cli("status")
    assert result.code != 0
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert str(crm) in lines[0] and "crm-contacts demo" in lines[0]
    assert "Traceback" not in result.err and "User_Disabled" not in result.err


def test_the_demo_recreates_the_embedded_crm_and_runs(cli, home):
    old_crm(home / "crm.sqlite")
    out = cli.ok("demo")
    assert "alice" in out.lower()
    assert cli("status").code == 0  # the recreated file has the current layout
    with sqlite3.connect(home / "crm.sqlite") as conn:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(Person)")}
        emails = conn.execute("SELECT name FROM sqlite_master WHERE name = 'Email'").fetchall()
    conn.close()
    assert "Pers_EmailAddress" not in columns and emails


def test_a_configured_crm_is_never_touched(cli, home, tmp_path, monkeypatch):
    theirs = old_crm(tmp_path / "theirs" / "crm.sqlite")
    before = digest(theirs)
    monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{theirs}")
    assert cli("demo").code != 0  # the demo runs on the embedded default only
    cli("status")
    cli("search", "--as", "alice@example.com", "Old")
    assert digest(theirs) == before
