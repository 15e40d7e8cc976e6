"""Sage CRM's tables and column names, the subset the Exchange integration reads.

The embedded demo CRM creates exactly these; a real Sage CRM database already has them
(with many more columns we never read). Searchable text columns are NOCASE in SQLite so
prefix searches use the indexes.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, MetaData, String, Table

metadata = MetaData()


def _text(name: str, length: int = 255, *, nocase: bool = False) -> Column:
    collation = "NOCASE" if nocase else None
    return Column(name, String(length).with_variant(String(length, collation=collation), "sqlite"))


users = Table(
    "Users",
    metadata,
    Column("User_UserId", Integer, primary_key=True),
    _text("User_Logon", 60),
    _text("User_FirstName", 60),
    _text("User_LastName", 60),
    _text("User_EmailAddress", 255, nocase=True),
    Column("User_Deleted", Integer),
)

company = Table(
    "Company",
    metadata,
    Column("Comp_CompanyId", Integer, primary_key=True),
    _text("Comp_Name", 255, nocase=True),
    Column("Comp_PrimaryUserId", Integer),
    Column("Comp_UpdatedDate", DateTime),
    Column("Comp_Deleted", Integer),
    Index("ix_comp_name", "Comp_Name"),
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
    Column("Addr_Deleted", Integer),
)

person = Table(
    "Person",
    metadata,
    Column("Pers_PersonId", Integer, primary_key=True),
    Column("Pers_CompanyId", Integer),
    Column("Pers_PrimaryUserId", Integer),  # the Account Manager
    Column("Pers_PrimaryAddressId", Integer),
    _text("Pers_Salutation", 20),
    _text("Pers_FirstName", 60, nocase=True),
    _text("Pers_MiddleName", 60),
    _text("Pers_LastName", 60, nocase=True),
    _text("Pers_Suffix", 20),
    _text("Pers_Title", 120),
    _text("Pers_Department", 120),
    _text("Pers_EmailAddress", 255, nocase=True),
    _text("Pers_PhoneCountryCode", 10),
    _text("Pers_PhoneAreaCode", 10),
    _text("Pers_PhoneNumber", 40),
    _text("Pers_WebSite", 255),
    Column("Pers_CreatedDate", DateTime),
    Column("Pers_UpdatedDate", DateTime),
    Column("Pers_Deleted", Integer),
    Index("ix_pers_last_first", "Pers_LastName", "Pers_FirstName"),
    Index("ix_pers_firstname", "Pers_FirstName"),
    Index("ix_pers_email", "Pers_EmailAddress"),
    Index("ix_pers_companyid", "Pers_CompanyId"),
    Index("ix_pers_primaryuserid", "Pers_PrimaryUserId"),
    Index("ix_pers_updateddate", "Pers_UpdatedDate"),
)

phone = Table(
    "Phone",
    metadata,
    Column("Phon_PhoneId", Integer, primary_key=True),
    _text("Phon_CountryCode", 10),
    _text("Phon_AreaCode", 10),
    _text("Phon_Number", 40),
    Column("Phon_Deleted", Integer),
)

# Sage links phones to people through PhoneLink (entity 13 = Person), typed Business/Mobile/...
phone_link = Table(
    "PhoneLink",
    metadata,
    Column("PLink_LinkId", Integer, primary_key=True),
    Column("PLink_EntityID", Integer),
    Column("PLink_RecordID", Integer),
    _text("PLink_Type", 40),
    Column("PLink_PhoneId", Integer),
    Column("PLink_Deleted", Integer),
    Index("ix_plink_record", "PLink_EntityID", "PLink_RecordID"),
)

PERSON_ENTITY_ID = 13
