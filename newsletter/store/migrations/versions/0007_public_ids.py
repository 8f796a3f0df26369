"""public ids: links name subscribers by a random id, not the row id; the signup intake

Every subscriber gets an opaque ``public_id`` (128 random bits), existing rows included; links are
made with it from now on. ``signup_intake`` holds a form request between its answer and its
application on the web's mail thread.

Revision ID: 0007_public_ids
Revises: 0006_engine_v2
"""

import base64
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0007_public_ids"
down_revision = "0006_engine_v2"
branch_labels = None
depends_on = None

_BATCH = 5_000
# As newsletter.store.models makes them, written out here so that this migration never changes.
PUBLIC_ID_LENGTH = 26


def new_public_id() -> str:
    return base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=").lower()


def upgrade() -> None:
    # NOT NULL with a constant default, then each row its own id: SQLite cannot add a NOT NULL column
    # otherwise without rebuilding the table, and rebuilding ``subscribers`` with foreign keys on
    # would cascade the drop into every table that refers to it.
    op.add_column(
        "subscribers", sa.Column("public_id", sa.String(length=PUBLIC_ID_LENGTH), nullable=False, server_default="")
    )
    connection = op.get_bind()
    subscribers = sa.table("subscribers", sa.column("id", sa.Integer()), sa.column("public_id", sa.String()))
    fill = (
        sa.update(subscribers)
        .where(subscribers.c.id == sa.bindparam("row_id"))
        .values(public_id=sa.bindparam("new_id"))
    )
    ids = connection.execute(sa.select(subscribers.c.id).where(subscribers.c.public_id == "")).scalars().all()
    for start in range(0, len(ids), _BATCH):
        connection.execute(fill, [{"row_id": i, "new_id": new_public_id()} for i in ids[start : start + _BATCH]])
    if connection.dialect.name != "sqlite":  # SQLite keeps the unused default: dropping it means a rebuild
        op.alter_column("subscribers", "public_id", server_default=None)
    op.create_index(op.f("ix_subscribers_public_id"), "subscribers", ["public_id"], unique=True)

    op.create_table(
        "signup_intake",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("wording_version", sa.String(length=64), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("ip_hash", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signup_intake")),
    )
    op.create_index("ix_signup_intake_email_key", "signup_intake", ["email_key"])


def downgrade() -> None:
    op.drop_index("ix_signup_intake_email_key", table_name="signup_intake")
    op.drop_table("signup_intake")
    op.drop_index(op.f("ix_subscribers_public_id"), table_name="subscribers")
    op.drop_column("subscribers", "public_id")
