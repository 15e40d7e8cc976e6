"""CRM sources: Sage CRM's own tables read through SQLAlchemy (a real Sage database
read-only, or the embedded SQLite demo CRM with the same table and column names)."""
