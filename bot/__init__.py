"""The Slack front end of crm-contacts: Bolt listeners that call the sync engine."""
