"""Sage CRM's tables and column names (7.1 and later), the subset we read (DESIGN section 4).

Since Sage CRM 7.1 `Person` has no email or phone columns: a person's emails live in
`Email` linked through `EmailLink`, phones in `Phone` through `PhoneLink`, each link
naming its entity (13 = Person, 5 = Company) and record id. The embedded demo CRM
creates exactly these tables, with Sage's bookkeeping columns (`*_CreatedDate`,
`*_UpdatedDate`, `*_Deleted`) on each; a real Sage CRM database already has them, with
many more columns we never read. `READ` lists exactly the columns our queries touch:
`crm check` looks for them and docs/sage-crm.md grants SELECT on them alone.

Searchable text columns are NOCASE in SQLite so prefix searches use the indexes (a
Sage database on SQL Server uses a case-insensitive collation).
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, MetaData, String, Table

metadata = MetaData()

PERSON_ENTITY_ID = 13  # Sage's entity id of Person in EmailLink / PhoneLink
COMPANY_ENTITY_ID = 5  # ... and of Company: its emails must never become a person's

EMAIL_TYPES = ("Business", "Private")  # ELink_Type values we map (email 1, email 2)
PHONE_TYPES = ("Business", "Fax", "Home", "Mobile")  # PLink_Type values we map


def _text(name: str, length: int = 255, *, nocase: bool = False) -> Column:
    collation = "NOCASE" if nocase else None
    return Column(name, String(length).with_variant(String(length, collation=collation), "sqlite"))


def _flag(name: str, length: int) -> Column:
    """Sage's yes/no columns on Users are short text (nchar): 'true'/'Y' set, else unset."""
    return Column(name, String(length))


def _bookkeeping(prefix: str) -> list[Column]:
    return [
        Column(f"{prefix}_CreatedDate", DateTime),
        Column(f"{prefix}_UpdatedDate", DateTime),
        Column(f"{prefix}_Deleted", Integer),  # NULL = live, 1 = deleted
    ]


users = Table(
    "Users",
    metadata,
    Column("User_UserId", Integer, primary_key=True),
    _text("User_Logon", 60),
    _text("User_FirstName", 60),
    _text("User_LastName", 60),
    _text("User_EmailAddress", 255, nocase=True),
    _flag("User_Disabled", 5),  # nchar(5) in Sage: 'true' / 'false'
    _flag("User_Resource", 5),  # nchar(5): 'true' for a resource (a room, a projector)
    _flag("User_IsTemplate", 1),  # nchar(1): 'Y' for a user template
    *_bookkeeping("User"),
)

company = Table(
    "Company",
    metadata,
    Column("Comp_CompanyId", Integer, primary_key=True),
    _text("Comp_Name", 255, nocase=True),
    Column("Comp_PrimaryUserId", Integer),  # the company's Account Manager
    *_bookkeeping("Comp"),
    Index("ix_comp_name", "Comp_Name"),
    Index("ix_comp_primaryuserid", "Comp_PrimaryUserId"),
    Index("ix_comp_updateddate", "Comp_UpdatedDate"),
)

address = Table(
    "Address",
    metadata,
    Column("Addr_AddressId", Integer, primary_key=True),
    _text("Addr_Address1"),
    _text("Addr_Address2"),
    _text("Addr_Address3"),
    _text("Addr_Address4"),
    _text("Addr_City", 60),
    _text("Addr_State", 60),
    _text("Addr_PostCode", 20),
    _text("Addr_Country", 60),
    *_bookkeeping("Addr"),
    Index("ix_addr_updateddate", "Addr_UpdatedDate"),
)

person = Table(
    "Person",
    metadata,
    Column("Pers_PersonId", Integer, primary_key=True),
    Column("Pers_CompanyId", Integer),
    Column("Pers_PrimaryUserId", Integer),  # the Account Manager
    Column("Pers_PrimaryAddressId", Integer),  # the default address
    _text("Pers_Salutation", 20),
    _text("Pers_FirstName", 60, nocase=True),
    _text("Pers_MiddleName", 60),
    _text("Pers_LastName", 60, nocase=True),
    _text("Pers_Suffix", 20),
    _text("Pers_Title", 50),  # 50, 40 and 21 (Phon_Number) as on a real install (issue 19)
    _text("Pers_Department", 120),
    _text("Pers_WebSite", 40),
    *_bookkeeping("Pers"),
    Index("ix_pers_last_first", "Pers_LastName", "Pers_FirstName"),
    Index("ix_pers_firstname", "Pers_FirstName"),
    Index("ix_pers_companyid", "Pers_CompanyId"),
    Index("ix_pers_primaryuserid", "Pers_PrimaryUserId"),
    Index("ix_pers_updateddate", "Pers_UpdatedDate"),
    # change detection: the person whose default address changed (issue 18), not a scan
    Index("ix_pers_primaryaddressid", "Pers_PrimaryAddressId"),
)

email = Table(
    "Email",
    metadata,
    Column("Emai_EmailId", Integer, primary_key=True),
    _text("Emai_EmailAddress", 255, nocase=True),
    *_bookkeeping("Emai"),
    Index("ix_emai_emailaddress", "Emai_EmailAddress"),
    Index("ix_emai_updateddate", "Emai_UpdatedDate"),
)

email_link = Table(
    "EmailLink",
    metadata,
    Column("ELink_LinkID", Integer, primary_key=True),
    Column("ELink_EntityID", Integer),  # 13 = Person, 5 = Company
    Column("ELink_RecordID", Integer),  # Pers_PersonId when the entity is 13
    _text("ELink_Type", 40),  # Business, Private
    Column("ELink_EmailId", Integer),
    *_bookkeeping("ELink"),
    Index("ix_elink_record", "ELink_RecordID", "ELink_EntityID"),  # by person, not by entity
    Index("ix_elink_emailid", "ELink_EmailId"),
    Index("ix_elink_updateddate", "ELink_UpdatedDate"),
)

phone = Table(
    "Phone",
    metadata,
    Column("Phon_PhoneId", Integer, primary_key=True),
    _text("Phon_CountryCode", 10),
    _text("Phon_AreaCode", 10),
    _text("Phon_Number", 21),
    *_bookkeeping("Phon"),
    Index("ix_phon_updateddate", "Phon_UpdatedDate"),
)

phone_link = Table(
    "PhoneLink",
    metadata,
    Column("PLink_LinkID", Integer, primary_key=True),
    Column("PLink_EntityID", Integer),  # 13 = Person, 5 = Company
    Column("PLink_RecordID", Integer),
    _text("PLink_Type", 40),  # Business, Fax ("Alternative" since 2021 R2), Home, Mobile, Pager
    Column("PLink_PhoneId", Integer),
    *_bookkeeping("PLink"),
    Index("ix_plink_record", "PLink_RecordID", "PLink_EntityID"),
    Index("ix_plink_phoneid", "PLink_PhoneId"),
    Index("ix_plink_updateddate", "PLink_UpdatedDate"),
)

# Exactly the columns we read, table by table (DESIGN section 4's first table). Every
# query in sync_engine.crm touches these and no others (tests/test_crm_sql.py checks it).
READ: dict[str, tuple[str, ...]] = {
    "Person": (
        "Pers_PersonId",
        "Pers_CompanyId",
        "Pers_PrimaryUserId",
        "Pers_PrimaryAddressId",
        "Pers_Salutation",
        "Pers_FirstName",
        "Pers_MiddleName",
        "Pers_LastName",
        "Pers_Suffix",
        "Pers_Title",
        "Pers_Department",
        "Pers_WebSite",
        "Pers_CreatedDate",
        "Pers_UpdatedDate",
        "Pers_Deleted",
    ),
    "Company": (
        "Comp_CompanyId",
        "Comp_Name",
        "Comp_PrimaryUserId",  # the company's Account Manager (standing rules, write-back scope)
        "Comp_UpdatedDate",
        "Comp_Deleted",
    ),
    "Email": ("Emai_EmailId", "Emai_EmailAddress", "Emai_UpdatedDate", "Emai_Deleted"),
    "EmailLink": (
        "ELink_LinkID",
        "ELink_EntityID",
        "ELink_RecordID",
        "ELink_Type",
        "ELink_EmailId",
        "ELink_UpdatedDate",
        "ELink_Deleted",
    ),
    "Phone": (
        "Phon_PhoneId",
        "Phon_CountryCode",
        "Phon_AreaCode",
        "Phon_Number",
        "Phon_UpdatedDate",
        "Phon_Deleted",
    ),
    "PhoneLink": (
        "PLink_LinkID",
        "PLink_EntityID",
        "PLink_RecordID",
        "PLink_Type",
        "PLink_PhoneId",
        "PLink_UpdatedDate",
        "PLink_Deleted",
    ),
    "Address": (
        "Addr_AddressId",
        "Addr_Address1",
        "Addr_Address2",
        "Addr_Address3",
        "Addr_Address4",
        "Addr_City",
        "Addr_State",
        "Addr_PostCode",
        "Addr_Country",
        "Addr_UpdatedDate",
        "Addr_Deleted",
    ),
    "Users": (
        "User_UserId",
        "User_Logon",
        "User_FirstName",
        "User_LastName",
        "User_EmailAddress",
        "User_Deleted",
        "User_Disabled",
        "User_Resource",
        "User_IsTemplate",
    ),
}

TABLES: dict[str, Table] = {
    "Person": person,
    "Company": company,
    "Email": email,
    "EmailLink": email_link,
    "Phone": phone,
    "PhoneLink": phone_link,
    "Address": address,
    "Users": users,
}


def cols(table: Table) -> list[Column]:
    """The columns of `table` we read, in READ's order (never `select(table)`: a real
    Sage table has many more, some we must not read, such as User_Password)."""
    return [table.c[name] for name in READ[table.name]]
