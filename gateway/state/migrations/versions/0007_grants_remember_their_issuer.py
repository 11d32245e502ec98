"""Grants remember the issuer of the token that asked, so ownership is (issuer, subject).

Grants issued before this revision have no issuer and can then be read or
revoked only by an admin; they expire within the grant lifetime anyway.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("issuer", sa.String(length=512), nullable=True))
