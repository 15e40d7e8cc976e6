"""The one decision both writers follow for a person's Email/Phone rows (row_writes.py):
which row is changed, made or relinked, how a phone is split, and which value does not
fit its column. Pure, so every case is plain values."""

from __future__ import annotations

import pytest

from sync_engine.crm.row_writes import Action, LinkedRow, first_too_long, row_write

OWN = LinkedRow(row_id=7, link_id=70, links=1, country="1", area="512", value="555 0100")
SHARED = LinkedRow(row_id=7, link_id=70, links=3, country="", area="", value="+1 512 555 0100")
WIDTHS = {"Person.Pers_Title": 50, "Phone.Phon_Number": 21, "Email.Emai_EmailAddress": 255}


def test_the_persons_own_row_changes_only_what_differs():
    write = row_write("business_phone", "+1 512 555 0999", OWN)
    assert write.action is Action.CHANGE and write.row is OWN
    assert dict(write.changed) == {"Phon_Number": "555 0999"}  # the row's codes kept
    assert write.expected == "1 512 555 0999"


def test_a_shared_row_is_never_changed_the_person_gets_a_row_of_their_own():
    write = row_write("business_phone", "+1 512 555 0999", SHARED)
    assert write.action is Action.OWN_ROW and write.row is SHARED  # its link_id moves
    assert dict(write.columns) == {
        "Phon_CountryCode": "+1",
        "Phon_AreaCode": "512",
        "Phon_Number": "555 0999",
    }
    assert not write.changed


def test_no_row_makes_a_new_row_and_link():
    write = row_write("email2", " zoe@home.example ", None)
    assert write.action is Action.NEW_ROW
    assert dict(write.columns) == {"Emai_EmailAddress": "zoe@home.example"}
    assert (write.kind, write.link_type, write.expected) == ("email", "Private", "zoe@home.example")


@pytest.mark.parametrize(
    ("row", "action", "drops_row"),
    [(OWN, Action.UNLINK, True), (SHARED, Action.UNLINK, False), (None, Action.KEEP, False)],
)
def test_a_blank_takes_the_link_away_and_the_row_only_when_nobody_else_has_it(
    row, action, drops_row
):  # type: ignore[no-untyped-def]
    write = row_write("mobile_phone", "", row)
    assert (write.action, write.drops_row) == (action, drops_row)


def test_what_the_person_shows_already_is_not_written_again():
    assert row_write("business_phone", "1 512 555 0100", OWN).action is Action.KEEP
    assert row_write("business_phone", "+1 512 555 0100", SHARED).action is Action.KEEP


def test_a_value_too_long_names_its_field_and_the_part_of_a_phone():
    long_number = row_write("home_phone", "+44 20 7946 0999 extension 123456", None)
    assert first_too_long(WIDTHS, {}, [long_number]) == (
        "the home phone (without its country and area codes) is 26 characters long; "
        "the CRM takes at most 21"
    )
    fits = row_write("home_phone", "+44 20 7946 0999 ext 12345", None)  # 26 whole, 19 split
    assert first_too_long(WIDTHS, {"job_title": "x" * 50}, [fits]) is None
    assert "job title is 51 characters" in str(first_too_long(WIDTHS, {"job_title": "x" * 51}, []))
    # a shared row gets the person a new row: the new row's widths count
    shared = row_write("business_phone", "+1 512 555 0100 extension 123456", SHARED)
    assert "(without its country and area codes) is 25" in str(first_too_long(WIDTHS, {}, [shared]))
    city = [("city", "Address.Addr_City", "x" * 61)]
    assert first_too_long({"Address.Addr_City": 60}, {}, [], city) == (
        "the city is 61 characters long; the CRM takes at most 60"
    )
