"""The processes that host every front end: `crm-contacts serve` answers Slack and Teams
in one web process, the clock posts digests to both. Only this package knows both front
ends; `bot` and `teams` never import each other (import-linter checks it)."""
