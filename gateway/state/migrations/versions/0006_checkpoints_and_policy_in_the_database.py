"""Checkpoints and the pack in force move into the database, shared by every replica.

Checkpoints used to be files under ``$WEIGHTGATE_HOME/checkpoints``, written by
the process that committed each batch. This revision creates their table and
imports that directory (the caller passes it as ``checkpoint_dir``), so a
running deployment keeps its history: the files stay where they are and become
the default anchor store. Signatures are not checked here (the migration has
no key); the publisher verifies the newest checkpoint before it extends it,
and ``audit verify`` verifies them all.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import context, op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_NAME = re.compile(r"^(\d{12})\.txt$")


def upgrade() -> None:
    checkpoints = op.create_table(
        "checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("size"),
    )
    op.create_table(
        "policy_in_force",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("spec", sa.String(length=512), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("source", sa.LargeBinary(), nullable=False),
        sa.Column("switched_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    directory = context.config.attributes.get("checkpoint_dir")
    if directory is not None:
        rows = list(_existing_checkpoints(Path(directory)))
        if rows:
            op.bulk_insert(checkpoints, rows)


def _existing_checkpoints(directory: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    if not directory.is_dir():
        return rows
    for path in sorted(directory.iterdir()):
        match = _NAME.match(path.name)
        if match is None:
            continue
        note = path.read_text(encoding="utf-8")
        lines = note.split("\n")
        try:
            root = base64.b64decode(lines[2], validate=True)
        except (IndexError, binascii.Error, ValueError):
            continue  # not a checkpoint; `audit verify --anchors` will say so
        modified = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        rows.append({"size": int(match[1]), "root": root, "note": note, "signed_at": modified})
    return rows
