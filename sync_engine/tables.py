"""The state store's tables (SQLAlchemy Core). Alembic migrations create and change them."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
    text,
)

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("crm_user_id", Integer, nullable=False, unique=True),
    Column("email", String(255), nullable=False, unique=True),
    Column("mailbox", String(255), nullable=False),
    Column("slack_user_id", String(64), unique=True),
    Column("slack_tz", String(64)),
    Column("slack_checked_at", DateTime(timezone=True)),  # last read from Slack's users.info
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ux_users_mailbox", "mailbox", unique=True),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("person_id", Integer, primary_key=True),
    Column("added_at", DateTime(timezone=True), nullable=False),
    Column("source", String(32), nullable=False),
)

links = Table(
    "links",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("person_id", Integer, primary_key=True),
    Column("item_id", String(512), nullable=False),
    Column("change_key", String(512), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("origin", String(16), nullable=False),
    Column("linked_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # JSON objects: the write-back fields both sides held after our last sync (issue 14)
    Column("crm_values", Text),
    Column("mailbox_values", Text),
)

# The last Outlook edit written to the CRM per person and field, and from which mailbox:
# another mailbox that finds this value in the CRM knows it was an Outlook edit (issue 14).
write_backs = Table(
    "write_backs",
    metadata,
    Column("person_id", Integer, primary_key=True),
    Column("field", String(32), primary_key=True),
    Column("value", Text, nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("written_at", DateTime(timezone=True), nullable=False),
    # when the Outlook edit was made (the contact's modified time; NULL when the target
    # gave none): a later edit from another mailbox wins, an earlier one loses
    Column("edited_at", DateTime(timezone=True)),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", String(16), nullable=False),  # running, ok, failed, partial
    Column("trigger", String(32), nullable=False),
    Column("dry_run", Boolean, nullable=False, default=False),
    Column("result", Text),  # JSON of SyncResult.as_json()
    Column("error", Text),
    Index("ix_runs_user_started", "user_id", "started_at"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("run_id", Integer, ForeignKey("runs.id")),
    Column("person_id", Integer),
    Column("person_name", String(255)),
    Column("action", String(32), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("item_id", String(512)),
    Index("ix_events_user_person", "user_id", "person_id"),
    Index("ix_events_user_at", "user_id", "at"),
)

# Per-mailbox scheduling state: what changed since the last good sync, when it is due.
mailbox_state = Table(
    "mailbox_state",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("list_changed_at", DateTime(timezone=True)),
    Column("last_run_at", DateTime(timezone=True)),
    Column("last_status", String(16)),
    Column("last_error", Text),
    Column("last_success_at", DateTime(timezone=True)),
    Column("crm_watermark", DateTime(timezone=False)),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("next_due_at", DateTime(timezone=True)),
    # Set by the scheduler (migration 0002): when the next full reconcile is due, and
    # the end of the period the user's last daily digest covered.
    Column("reconcile_at", DateTime(timezone=True)),
    Column("summary_until", DateTime(timezone=True)),
    # What kind of failure the last run was (migration 0013): credentials, access, mailbox,
    # crm; NULL after a good run. The admin alerts group failures by it.
    Column("last_error_kind", String(16)),
)

# What a mailbox target learned about an address (migration 0007): Graph's user object id
# for it, or the primary SMTP address Exchange wants instead of an alias. `target` names
# the service (kind and endpoint), so a value from one tenant or server is never reused.
mailbox_identities = Table(
    "mailbox_identities",
    metadata,
    Column("target", String(512), primary_key=True),
    Column("address", String(255), primary_key=True),
    Column("value", String(512), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=False),
)

# Once-only marks shared by every scheduler process (e.g. the team summary's last period).
schedule_marks = Table(
    "schedule_marks",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
)

# Per-user digest settings (migration 0004); no row = the defaults (daily at SUMMARY_TIME).
digest_prefs = Table(
    "digest_prefs",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("time", String(5)),  # HH:MM in the user's zone; NULL = SUMMARY_TIME
    Column("frequency", String(8), nullable=False, server_default="daily"),
    Column("weekday", Integer, nullable=False, server_default=text("0")),  # 0 = Monday
    Column("snoozed_until", Date),  # the user's local date the digest resumes on
    Column("off", Boolean, nullable=False, server_default=false()),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)

# -- the people index (migration 0008): what search reads instead of the customer's CRM ----

# Folded keys compare byte by byte ("C" collation on PostgreSQL; SQLite's default BINARY), so
# a prefix is one B-tree range whatever the database's locale.
_KEY = String(320).with_variant(String(320, collation="C"), "postgresql")


def _people_index_tables(suffix: str) -> tuple[Table, Table, Table, Table]:
    """One set of the index's tables. There are two sets (migrations 0008 and 0018): search
    reads the set `index_state.live_set` names while a rebuild fills the other one, so a
    killed rebuild never takes a working index away."""
    # One row per CRM person we have seen: what the picker shows, the folded forms search
    # ranks, and the CRM change time the row reflects. Soft-deleted people stay as
    # `live = false` so the periodic sweep can tell "unchanged and deleted" from "new to us".
    people = Table(
        f"people_index{suffix}",
        metadata,
        Column("person_id", Integer, primary_key=True, autoincrement=False),
        Column("live", Boolean, nullable=False),
        Column("first_name", String(255), nullable=False, server_default=""),
        Column("middle_name", String(255), nullable=False, server_default=""),
        Column("last_name", String(255), nullable=False, server_default=""),
        Column("company", String(255), nullable=False, server_default=""),
        Column("email", String(320), nullable=False, server_default=""),
        Column("job_title", String(255), nullable=False, server_default=""),
        Column("business_phone", String(64), nullable=False, server_default=""),
        Column("mobile_phone", String(64), nullable=False, server_default=""),
        Column("manager", String(255), nullable=False, server_default=""),
        Column("name_key", _KEY, nullable=False, server_default=""),  # folded "first middle last"
        Column("company_key", _KEY, nullable=False, server_default=""),  # folded company
        Column("email_key", _KEY, nullable=False, server_default=""),  # folded email
        Column("words", Text, nullable=False, server_default=""),  # folded words, space-separated
        Column("term_ids", Text, nullable=False, server_default=""),  # their index_terms ids
        Column("changed_at", DateTime(timezone=False)),  # the CRM's change time (CRM clock)
        Index(f"ix_people_index{suffix}_company", "company_key"),
        Index(f"ix_people_index{suffix}_email", "email_key"),
    )
    # The vocabulary: every distinct folded word of a name, company or email local part.
    terms = Table(
        f"index_terms{suffix}",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("word", _KEY, nullable=False),
        Column("people", Integer, nullable=False, server_default=text("0")),  # live people
        Index(f"ux_index_terms{suffix}_word", "word", unique=True),
    )
    # Typo look-up (one edit): each term under itself and under every form with one letter
    # deleted (a "deletion neighbourhood", as in SymSpell). A query word's own deletions meet
    # the term's when they differ by one substitution, insertion, deletion or transposition.
    keys = Table(
        f"index_term_keys{suffix}",
        metadata,
        Column("key", _KEY, primary_key=True),
        Column("term_id", Integer, primary_key=True, autoincrement=False),
        sqlite_with_rowid=False,
    )
    # Postings: which live person has which term.
    postings = Table(
        f"index_postings{suffix}",
        metadata,
        Column("term_id", Integer, primary_key=True, autoincrement=False),
        Column("person_id", Integer, primary_key=True, autoincrement=False),
        sqlite_with_rowid=False,
    )
    return people, terms, keys, postings


people_index, index_terms, index_term_keys, index_postings = _people_index_tables("")

# One row (id = 1): whether the index is usable and how far it has followed the CRM.
index_state = Table(
    "index_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("ready", Boolean, nullable=False, server_default=false()),
    Column(
        "building_since", DateTime(timezone=True)
    ),  # the last build began; its lock says if it runs
    Column("built_at", DateTime(timezone=True)),
    Column("watermark", DateTime(timezone=False)),  # latest CRM change applied (CRM clock)
    Column("refreshed_at", DateTime(timezone=True)),
    Column("swept_at", DateTime(timezone=True)),  # last full id sweep (hard deletes)
    Column("people", Integer, nullable=False, server_default=text("0")),  # live people
    Column("live_set", Integer, nullable=False, server_default=text("0")),  # 0 or 1 (0018)
)

# -- standing rules (migration 0017, DESIGN rule 11) ----------------------------------------
# A rule's people are rows of `subscriptions` too (source `rule:<kind>` when no hand picked
# them), so everything that reads My CRM Contacts sees them; these tables say which rules
# are on, whom each brings, who was removed by hand, and why someone a rule let go leaves.

standing_rules = Table(
    "standing_rules",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("kind", String(32), primary_key=True),  # account-manager, company-manager
    Column("added_at", DateTime(timezone=True), nullable=False),
    Column("evaluated_at", DateTime(timezone=True)),  # last full evaluation; NULL = due now
)

# Whom each rule brings now (as of the last evaluation or change seen in the CRM).
rule_people = Table(
    "rule_people",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("person_id", Integer, primary_key=True, autoincrement=False),
    Index("ix_rule_people_person", "person_id"),
)

# People a rule brought and the user removed by hand: the rule leaves them out until the
# user adds them by hand again.
list_exclusions = Table(
    "list_exclusions",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("person_id", Integer, primary_key=True, autoincrement=False),
    Column("removed_at", DateTime(timezone=True), nullable=False),
)

# People a rule let go who may still be linked: the next sync unlinks them with this
# reason; `guarded` ones (a CRM change, not the user) count toward rule 8's limit.
rule_departures = Table(
    "rule_departures",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("person_id", Integer, primary_key=True, autoincrement=False),
    Column("reason", Text, nullable=False),
    Column("guarded", Boolean, nullable=False),
    Column("left_at", DateTime(timezone=True), nullable=False),
)

# One row (id = 1): how far the rules have followed the CRM's changes (CRM clock).
rules_watermark = Table(
    "rules_watermark",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("watermark", DateTime(timezone=False)),
)

# Where another chat front end reaches a user or a channel (issue 21: Microsoft Teams):
# the account, the address to post to later (digests, sync results, the team summary),
# and the email the account was matched with, re-read when `checked_at` is a day old.
# `kind` is "user" (user_id set) or "channel" (a place to post, no user).
chat_accounts = Table(
    "chat_accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("front_end", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("account_id", String(255), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE")),
    Column("email", String(255)),
    Column("tenant_id", String(64)),
    Column("conversation_id", String(512)),
    Column("service_url", String(512)),
    Column("tz", String(64)),
    Column("checked_at", DateTime(timezone=True)),
    Index("ux_chat_accounts_account", "front_end", "kind", "account_id", unique=True),
    Index("ix_chat_accounts_user", "user_id"),
)

# Admin alerts (migration 0013): one row per problem ever seen (kind + key, e.g.
# mailbox_failing + "mailbox:42"), so a start and a clear are each posted once, whichever
# clock process sees them, and a problem that comes back is posted at most once a day.
alerts = Table(
    "alerts",
    metadata,
    Column("kind", String(40), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("open", Boolean, nullable=False, server_default=false()),
    Column("opened_at", DateTime(timezone=True)),
    Column("closed_at", DateTime(timezone=True)),
    Column("summary", Text),  # the words of the start message, reused by the clear
    Column("start_posted", Boolean, nullable=False, server_default=false()),
    Column("started_posted_at", DateTime(timezone=True)),  # the last start message sent
    Column("clear_pending", Boolean, nullable=False, server_default=false()),
)

# Write-back paused (issue 19): one row (id = 1) while Sage CRM refuses our REST login.
# Nothing is sent until SAGE_REST_URL/USER/PASSWORD change (`credentials` is a salted hash
# of them, never the password) or an admin's `crm check` logs in again: Sage locks an
# account out after a number of failed logons.
write_back_pause = Table(
    "write_back_pause",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("since", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False),
    Column("credentials", String(200), nullable=False),
)

# An Email/Phone row we created in Sage whose link could not be made and whose delete
# failed too (issue 19): the next write-back of that person and type reuses it.
crm_orphan_rows = Table(
    "crm_orphan_rows",
    metadata,
    Column("kind", String(8), primary_key=True),  # email, phone
    Column("row_id", Integer, primary_key=True, autoincrement=False),
    Column("person_id", Integer, nullable=False),
    Column("link_type", String(40), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Where each mailbox is served and which target its links belong to (migration 0015, issue
# 20), by lower-case mailbox address. `placed`/`placed_why`/`placed_at`: with
# MAILBOX_BACKEND=hybrid, "graph" or "ews", why, and when it was decided (re-checked daily
# and after a failed sync). `synced_target`: the target (kind and endpoint) the links' item
# ids and the saved delta state come from; a sync on another target trusts neither.
mailbox_targets = Table(
    "mailbox_targets",
    metadata,
    Column("address", String(255), primary_key=True),
    Column("placed", String(16)),
    Column("placed_why", Text),
    Column("placed_at", DateTime(timezone=True)),
    Column("synced_target", String(512)),
    Column("synced_at", DateTime(timezone=True)),
)

# -- the people index's second set of tables (migration 0018): what a rebuild fills -------
people_index_b, index_terms_b, index_term_keys_b, index_postings_b = _people_index_tables("_b")
