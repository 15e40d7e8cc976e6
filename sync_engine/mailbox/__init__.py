"""Mailbox targets behind one small protocol: local (embedded), ews (exchangelib), graph."""
