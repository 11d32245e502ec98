"""Alembic migrations: every schema change ships as a revision here."""
