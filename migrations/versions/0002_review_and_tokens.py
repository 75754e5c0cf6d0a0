"""Review support: API tokens, the item's failing validators and a reviewer's edited output.

Revision ID: 0002_review_and_tokens
Revises: 0001_initial
Create Date: 2026-11-27

`items.failed_validators` is denormalised from the final attempt's reports (",name,name,") so the
review list can filter by failing validator with one indexed-free LIKE on both SQLite and
PostgreSQL, instead of a JSON query that differs per dialect. Existing rows are backfilled here
from their final attempts, with frozen table stubs (never the live models).
"""

import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_review_and_tokens"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)

_items = sa.table("items", sa.column("id", sa.Integer), sa.column("final_attempt_id", sa.Integer),
                  sa.column("failed_validators", sa.String))
_attempts = sa.table("attempts", sa.column("id", sa.Integer), sa.column("reports", JSON))


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("failed_validators", sa.String(500), nullable=True))
        batch.add_column(sa.Column("edited_output", sa.Text(), nullable=True))
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_used_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])
    _backfill_failed_validators()


def _backfill_failed_validators() -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(_items.c.id, _attempts.c.reports).join(_attempts, _attempts.c.id == _items.c.final_attempt_id)
    ).all()
    for item_id, reports in rows:
        if isinstance(reports, str):
            reports = json.loads(reports)
        names = sorted({r.get("validator", "") for r in reports or [] if not r.get("passed", True)} - {""})
        if names:
            conn.execute(sa.update(_items).where(_items.c.id == item_id)
                         .values(failed_validators="," + ",".join(names) + ","))


def downgrade() -> None:
    op.drop_index("ix_api_tokens_user_id", table_name="api_tokens")
    op.drop_table("api_tokens")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("edited_output")
        batch.drop_column("failed_validators")
