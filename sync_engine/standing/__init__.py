"""Standing rules (issue 18, DESIGN rule 11): `account-manager` and `company-manager` keep
My CRM Contacts current as the CRM assigns people.

`rules` is the pure part (who joins, who leaves, and why), `state` the tables, `keeper`
the clock's step that follows the CRM's change detection, and `service` the use cases
the CLI and the bot call through `Engine.rules`. Nothing is imported here, so the pure
module can be imported without the rest.
"""
