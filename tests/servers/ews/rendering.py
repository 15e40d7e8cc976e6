"""SOAP envelopes, faults, response messages and <t:Contact> elements as Exchange writes them."""

from __future__ import annotations

from typing import Any

from lxml import etree

from sync_engine.mailbox.ews import (
    SALUTATION_PROPERTY_TAG,
)

from .schema import (
    ADDRESS_PARTS,
    CONTACT_FIELDS,
    FIND_ITEM_TEXT_LIMIT,
    ITEM_FIELDS,
    SOAP,
    E,
    ItemError,
    Key,
    M,
    SoapFault,
    StoredItem,
    T,
    add_simple,
    path_key,
)


class Rendering:
    """Writing answers (mixed into EwsServer)."""

    def _envelope(self, operation: str, messages: list[Any]) -> bytes:
        env = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"s": SOAP})
        header = etree.SubElement(env, f"{{{SOAP}}}Header")
        etree.SubElement(
            header,
            f"{{{T}}}ServerVersionInfo",
            nsmap={"h": T},
            MajorVersion="15",
            MinorVersion="1",
            MajorBuildNumber="2507",
            MinorBuildNumber="6",
            Version="V2017_07_11",
        )
        body = etree.SubElement(env, f"{{{SOAP}}}Body")
        response = etree.SubElement(body, f"{{{M}}}{operation}Response", nsmap={"m": M, "t": T})
        container = etree.SubElement(response, f"{{{M}}}ResponseMessages")
        for message in messages:
            container.append(message)
        return etree.tostring(env, xml_declaration=True, encoding="utf-8")

    def _fault(self, fault: SoapFault) -> bytes:
        env = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"s": SOAP})
        body = etree.SubElement(env, f"{{{SOAP}}}Body")
        f = etree.SubElement(body, f"{{{SOAP}}}Fault")
        code = etree.SubElement(f, "faultcode", nsmap={"a": T})
        code.text = f"a:{fault.code}"
        etree.SubElement(f, "faultstring").text = fault.text
        detail = etree.SubElement(f, "detail")
        etree.SubElement(detail, f"{{{E}}}ResponseCode", nsmap={"e": E}).text = fault.code
        etree.SubElement(detail, f"{{{E}}}Message", nsmap={"e": E}).text = fault.text
        if fault.values:
            xml = etree.SubElement(detail, f"{{{T}}}MessageXml", nsmap={"t": T})
            for name, text in fault.values.items():
                etree.SubElement(xml, f"{{{T}}}Value", Name=name).text = text
        return etree.tostring(env, xml_declaration=True, encoding="utf-8")

    @staticmethod
    def _message(operation: str, error: ItemError | None = None) -> Any:
        msg = etree.Element(f"{{{M}}}{operation}ResponseMessage")
        if error is None:
            msg.set("ResponseClass", "Success")
            etree.SubElement(msg, f"{{{M}}}ResponseCode").text = "NoError"
        else:
            msg.set("ResponseClass", "Error")
            etree.SubElement(msg, f"{{{M}}}MessageText").text = error.text
            etree.SubElement(msg, f"{{{M}}}ResponseCode").text = error.code
            etree.SubElement(msg, f"{{{M}}}DescriptiveLinkKey").text = "0"
            if error.values:
                xml = etree.SubElement(msg, f"{{{M}}}MessageXml")
                for name, text in error.values.items():
                    etree.SubElement(xml, f"{{{T}}}Value", Name=name).text = text
        return msg

    # -- rendering ----------------------------------------------------------------------

    def _render(self, item: StoredItem, shape: Any, *, find: bool = False) -> Any:
        """A <t:Contact> with the id and the properties the ItemShape asked for; for FindItem
        (`find`), text values longer than 255 characters come back cut to 255."""
        contact = etree.Element(f"{{{T}}}Contact")
        etree.SubElement(contact, f"{{{T}}}ItemId", Id=item.item_id, ChangeKey=item.change_key)
        wanted: list[Key] = []
        base = shape.findtext(f"{{{T}}}BaseShape") if shape is not None else "IdOnly"
        props = dict(item.props)
        props[("f", "item:DateTimeCreated")] = item.created.strftime("%Y-%m-%dT%H:%M:%SZ")
        props[("f", "item:LastModifiedTime")] = item.modified.strftime("%Y-%m-%dT%H:%M:%SZ")
        if find:
            for key, value in props.items():
                if isinstance(value, str) and len(value) > FIND_ITEM_TEXT_LIMIT:
                    props[key] = value[:FIND_ITEM_TEXT_LIMIT]
        if base in ("AllProperties", "Default"):
            wanted.extend(k for k in props if k[0] != "x")
            wanted.append(("f", "contacts:CompleteName"))
        extra = shape.find(f"{{{T}}}AdditionalProperties") if shape is not None else None
        if extra is not None:
            for path in extra:
                key = path_key(path)
                if key[0] == "f" and key[1] in ("contacts:EmailAddresses", "contacts:PhoneNumbers"):
                    wanted.extend(k for k in props if k[0] == "i" and k[1] == key[1][:-2])
                elif key[0] == "f" and key[1] == "contacts:PhysicalAddresses":
                    wanted.extend(
                        k
                        for k in props
                        if k[0] == "i" and k[1].startswith("contacts:PhysicalAddress:")
                    )
                else:
                    wanted.append(key)
        simple: dict[str, Any] = {}
        indexed: dict[str, dict[str, Any]] = {}
        extended: list[tuple[Key, Any]] = []
        for key in dict.fromkeys(wanted):
            if key == ("f", "contacts:CompleteName"):
                simple["CompleteName"] = self._complete_name(props)
                continue
            if key not in props:
                continue
            if key[0] == "f":
                simple[key[1].split(":", 1)[1]] = props[key]
            elif key[0] == "i":
                uri, label = key[1], key[2]
                if uri.startswith("contacts:PhysicalAddress:"):
                    entry = indexed.setdefault("PhysicalAddresses", {}).setdefault(label, {})
                    entry[uri.rsplit(":", 1)[1]] = props[key]
                else:
                    container = "EmailAddresses" if uri.endswith("EmailAddress") else "PhoneNumbers"
                    indexed.setdefault(container, {})[label] = props[key]
            else:
                extended.append((key, props[key]))
        for name in ITEM_FIELDS[:-1]:
            if name in simple:
                add_simple(contact, name, simple[name])
        for key, value in extended:
            prop = etree.SubElement(contact, f"{{{T}}}ExtendedProperty")
            attrs = dict(
                zip(
                    (
                        "DistinguishedPropertySetId",
                        "PropertySetId",
                        "PropertyTag",
                        "PropertyName",
                        "PropertyId",
                        "PropertyType",
                    ),
                    key[1:],
                    strict=True,
                )
            )
            etree.SubElement(
                prop, f"{{{T}}}ExtendedFieldURI", {k: v for k, v in attrs.items() if v}
            )
            if isinstance(value, list):
                values = etree.SubElement(prop, f"{{{T}}}Values")
                for v in value:
                    etree.SubElement(values, f"{{{T}}}Value").text = v
            else:
                etree.SubElement(prop, f"{{{T}}}Value").text = value
        if ITEM_FIELDS[-1] in simple:  # LastModifiedTime comes after ExtendedProperty
            add_simple(contact, ITEM_FIELDS[-1], simple[ITEM_FIELDS[-1]])
        for name in CONTACT_FIELDS:
            if name in indexed:
                container = etree.SubElement(contact, f"{{{T}}}{name}")
                for label, value in indexed[name].items():
                    entry = etree.SubElement(container, f"{{{T}}}Entry", Key=label)
                    if isinstance(value, dict):
                        for part in ADDRESS_PARTS:
                            if part in value:
                                etree.SubElement(entry, f"{{{T}}}{part}").text = value[part]
                    else:
                        entry.text = value
            elif name in simple:
                add_simple(contact, name, simple[name])
        return contact

    @staticmethod
    def _complete_name(props: dict[Key, Any]) -> Any:
        elem = etree.Element(f"{{{T}}}CompleteName")
        parts = {
            "Title": props.get(("x", "", "", SALUTATION_PROPERTY_TAG, "", "", "String")),
            "FirstName": props.get(("f", "contacts:GivenName")),
            "MiddleName": props.get(("f", "contacts:MiddleName")),
            "LastName": props.get(("f", "contacts:Surname")),
            "Suffix": props.get(("f", "contacts:Generation")),
        }
        for name, value in parts.items():
            if value:
                etree.SubElement(elem, f"{{{T}}}{name}").text = value
        full = " ".join(
            v for v in (parts["FirstName"], parts["MiddleName"], parts["LastName"]) if v
        )
        if full:
            etree.SubElement(elem, f"{{{T}}}FullName").text = full
        return elem
