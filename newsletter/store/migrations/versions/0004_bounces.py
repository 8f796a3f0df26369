"""bounces: what comes back (bounces, complaints, auto-replies), and subscribers' sends by subscriber

Revision ID: 0004_bounces
Revises: 0003_campaign_faq_entries
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_bounces"
down_revision = "0003_campaign_faq_entries"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bounces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.Column("matched_by", sa.String(length=24), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("status_code", sa.String(length=16), nullable=True),
        sa.Column("diagnostic", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("changed", sa.String(length=16), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('hard', 'soft', 'blocked', 'delayed', 'complaint', 'auto_reply', 'other')",
            name=op.f("ck_bounces_kind_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_bounces_campaign_id_campaigns"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["outbox_id"], ["outbox.id"], name=op.f("fk_bounces_outbox_id_outbox"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"], ["subscribers.id"], name=op.f("fk_bounces_subscriber_id_subscribers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounces")),
        sa.UniqueConstraint("key", name=op.f("uq_bounces_key")),
    )
    op.create_index("ix_bounces_campaign_id_kind", "bounces", ["campaign_id", "kind"])
    op.create_index("ix_bounces_outbox_id", "bounces", ["outbox_id"])
    op.create_index("ix_bounces_received_at", "bounces", ["received_at"])
    op.create_index(op.f("ix_bounces_recipient"), "bounces", ["recipient"])
    op.create_index("ix_bounces_subscriber_id", "bounces", ["subscriber_id"])
    op.create_index("ix_outbox_subscriber_id", "outbox", ["subscriber_id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_subscriber_id", table_name="outbox")
    op.drop_index("ix_bounces_subscriber_id", table_name="bounces")
    op.drop_index(op.f("ix_bounces_recipient"), table_name="bounces")
    op.drop_index("ix_bounces_received_at", table_name="bounces")
    op.drop_index("ix_bounces_outbox_id", table_name="bounces")
    op.drop_index("ix_bounces_campaign_id_kind", table_name="bounces")
    op.drop_table("bounces")
