"""Front-end-neutral chat logic both front ends render (DESIGN 3): what a picker page
holds, what a result says, the words. Imports only `sync_engine`; `bot` (Slack) and
`teams` (Microsoft Teams) build on it and never on each other."""
