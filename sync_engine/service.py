"""The engine's front door: every use case the CLI and the Slack bot offer.

Callers (CLI, bot, scheduler) hold no rules; they call these methods and render what
comes back. Every method acts for one CRM user and only ever on that user's own list.
(Skeleton: signatures are the contract; bodies land with the sync engine issue.)
"""
