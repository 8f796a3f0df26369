"""campaign_faq_entries: the FAQ entries each started campaign carried, for `faq changes`

Revision ID: 0003_campaign_faq_entries
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_campaign_faq_entries"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaign_faq_entries",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("faq_id", sa.String(length=64), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=80), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_faq_entries_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "faq_id", name=op.f("pk_campaign_faq_entries")),
    )


def downgrade() -> None:
    op.drop_table("campaign_faq_entries")
