"""signup requests: each form request with its own name, topics and consent, until its link is pressed

Revision ID: 0005_consent
Revises: 0004_bounces
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_consent"
down_revision = "0004_bounces"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signup_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("consent_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["consents.id"], name=op.f("fk_signup_requests_consent_id_consents"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_signup_requests_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signup_requests")),
        sa.UniqueConstraint("token", name=op.f("uq_signup_requests_token")),
    )
    op.create_index("ix_signup_requests_subscriber_id", "signup_requests", ["subscriber_id"])


def downgrade() -> None:
    op.drop_index("ix_signup_requests_subscriber_id", table_name="signup_requests")
    op.drop_table("signup_requests")
