"""Server-side end of review-app sessions: users.session_version.

Revision ID: 0003_session_version
Revises: 0002_review_and_tokens
Create Date: 2026-12-02

Admin sessions are signed cookies; a copied cookie stays valid until it expires unless the server
can tell it is stale. Each login stamps the user's session_version into the session, and logout,
a password change or disabling the user raise it, so every older cookie stops working at once.
Existing users start at 0 (the server default fills the column on both SQLite and PostgreSQL).
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_session_version"
down_revision = "0002_review_and_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("session_version", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_version")
