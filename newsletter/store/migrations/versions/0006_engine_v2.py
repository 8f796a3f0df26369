"""delivery engine v2: the shared pace of a campaign's workers; claims in id order from the index

Revision ID: 0006_engine_v2
Revises: 0005_consent
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_engine_v2"
down_revision = "0005_consent"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "send_pace",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_send_pace_campaign_id_campaigns"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_send_pace")),
    )
    op.create_index(op.f("ix_outbox_campaign_id_state_id"), "outbox", ["campaign_id", "state", "id"])
    op.drop_index(op.f("ix_outbox_campaign_id_state"), table_name="outbox")


def downgrade() -> None:
    op.create_index(op.f("ix_outbox_campaign_id_state"), "outbox", ["campaign_id", "state"])
    op.drop_index(op.f("ix_outbox_campaign_id_state_id"), table_name="outbox")
    op.drop_table("send_pace")
