"""Persistent state: catalog, organisations, grants and the audit log, via SQLAlchemy."""
