"""Stored perfect-subtree hashes, so proofs are lookups at any log size; country and tier
columns to filter the log by.

A log that already has entries gets its nodes computed here from the stored
leaf hashes (RFC 6962 hashing, which does not change), and its new columns
filled from the entries themselves.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from gateway.audit.merkle import CompactRange

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "merkle_nodes",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx"),
    )
    with op.batch_alter_table("audit_entries") as batch_op:
        batch_op.add_column(sa.Column("country", sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column("tier", sa.Integer(), nullable=True))
    connection = op.get_bind()
    tree = CompactRange()
    nodes = sa.table("merkle_nodes", sa.column("level"), sa.column("idx"), sa.column("hash"))
    entries = sa.table("audit_entries", sa.column("idx"), sa.column("country"), sa.column("tier"))
    rows = connection.execute(
        sa.text("SELECT idx, entry, leaf_hash FROM audit_entries ORDER BY idx")
    ).all()
    pending: list[dict[str, object]] = []
    for index, entry, leaf in rows:
        data = json.loads(bytes(entry))
        connection.execute(
            entries.update()
            .where(entries.c.idx == index)
            .values(
                country=(data.get("actor") or {}).get("country"),
                tier=(data.get("decision") or {}).get("tier"),
            )
        )
        pending.extend(
            {"level": level, "idx": idx, "hash": digest}
            for level, idx, digest in tree.append(bytes(leaf))
            if level > 0
        )
        if len(pending) >= 10_000:
            op.bulk_insert(nodes, pending)
            pending = []
    if pending:
        op.bulk_insert(nodes, pending)
