"""KEK ids long enough for a KMS key ARN (``kms:arn:aws:kms:REGION:ACCOUNT:key/ID``).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_files", schema=None) as batch_op:
        batch_op.alter_column(
            "kek_id", existing_type=sa.String(length=64), type_=sa.String(length=256)
        )
