"""A phone number as Sage CRM keeps it: country code, area code and number in three columns.

Sage's own Exchange integration splits an Outlook number "across phon_countrycode,
phon_areacode, phon_number" (Sage CRM help, "Synchronizing contacts", field mappings).
Reading joins the three parts with spaces (source.py); writing splits it again here:

- when the number starts with the row's own country and area codes (as the joined value
  Outlook got from us does), those codes are kept as the row has them and only the rest
  goes to `Phon_Number`: an edit of the local part never blanks the codes;
- otherwise libphonenumber (`phonenumbers`) splits it: the country calling code, the
  geographical area code (none for mobiles and non-geographic numbers), and the rest.
  A number without `+` is read in the country of the row's own code;
- a number neither can split goes whole into `Phon_Number`, codes blank.

The rest keeps the user's own spacing (only the leading codes are cut off). Pure: no I/O.
"""

from __future__ import annotations

import phonenumbers

_SEPARATORS = " \t-./)("


def split_phone(value: str, country: str = "", area: str = "") -> tuple[str, str, str]:
    """(Phon_CountryCode, Phon_AreaCode, Phon_Number) for the Outlook number `value`,
    given the codes the row holds now ('' for a new row)."""
    value = value.strip()
    row_cc, row_area = _digits(country), _digits(area)
    parsed = _parse(value, row_cc)
    if parsed is None:
        if row_cc and _digits(value).startswith(row_cc + row_area):
            return country, area, _after_digits(value, len(row_cc + row_area))
        return "", "", value
    national = phonenumbers.national_significant_number(parsed)
    start = _digits(value).find(national)
    if start < 0:  # written in a way we cannot line up with its digits: keep it whole
        return "", "", value
    if row_cc and parsed.country_code == int(row_cc) and national.startswith(row_area):
        return country, area, _after_digits(value, start + len(row_area))
    length = phonenumbers.length_of_geographical_area_code(parsed)
    plus = "" if row_cc and not country.strip().startswith("+") else "+"  # the row's style
    return (
        f"{plus}{parsed.country_code}",
        national[:length],
        _after_digits(value, start + length),
    )


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isascii() and c.isdigit())


def _parse(value: str, row_cc: str) -> phonenumbers.PhoneNumber | None:
    """The number, read in the country of the row's code when it has no `+`."""
    region = phonenumbers.region_code_for_country_code(int(row_cc)) if row_cc else None
    try:
        return phonenumbers.parse(value, None if region == "ZZ" else region)
    except phonenumbers.NumberParseException:
        return None


def _after_digits(value: str, count: int) -> str:
    """`value` with its first `count` digits (and what stands between them) cut off."""
    if count == 0:
        return value
    seen = 0
    for i, char in enumerate(value):
        if seen == count:
            return value[i:].lstrip(_SEPARATORS + "+") or value
        if char.isascii() and char.isdigit():
            seen += 1
    return value if seen < count else ""
