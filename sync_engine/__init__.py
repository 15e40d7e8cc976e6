"""Everything that is not Slack: CRM sources, mailbox targets, the planner and the state store."""
