"""Review workflow: undoable decisions, "use this version", feedback labels, full-text search, webhooks.

Revision ID: 0004_review_workflow
Revises: 0003_session_version
Create Date: 2026-12-04

- `reviews.attempt_id`: the attempt a "use this version" decision made final.
- `reviews.previous`: the item's review fields before the decision ({review_status, edited_output,
  output, final_attempt_id, final_path, status, …}), so `undo` restores them exactly; `reviews.undoes_id`
  names the decision an undo took back.
- `feedback_labels`: a reviewer's word on the gate: "false_flag" (a failing report that is wrong) or
  "missed_defect" (a rubric class the validators did not catch), read back by benchmarks/validators.py.
- `items.search_text`: input and deliverable as one text, written by the service layer, so the review
  list searches both with LIKE on SQLite and with a GIN full-text index on PostgreSQL. Existing rows
  are backfilled here with frozen table stubs (never the live models).
- `webhook_deliveries`: one row per batch whose finish is announced to a URL, with its retries.
"""

import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_review_workflow"
down_revision = "0003_session_version"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)
SEARCH_INDEX = "ix_items_search_text_fts"

_items = sa.table("items", sa.column("id", sa.Integer), sa.column("input", JSON), sa.column("output", sa.Text),
                  sa.column("edited_output", sa.Text), sa.column("search_text", sa.Text))


def upgrade() -> None:
    with op.batch_alter_table("reviews") as batch:
        batch.add_column(sa.Column("attempt_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("previous", JSON, nullable=True))
        batch.add_column(sa.Column("undoes_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("search_text", sa.Text(), nullable=True))
    op.create_table(
        "feedback_labels",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("item_id", sa.Integer(), sa.ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
        sa.Column("attempt_id", sa.Integer(), nullable=True),
        sa.Column("label", sa.String(32), nullable=False),
        sa.Column("validator", sa.String(100), nullable=True),
        sa.Column("defect_class", sa.String(64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("labeller_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("labeller_name", sa.String(100), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_feedback_labels_item_id", "feedback_labels", ["item_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("batch_id", sa.Integer(), sa.ForeignKey("batches.id", ondelete="CASCADE"), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("next_try_at", TS, nullable=True),
        sa.Column("delivered_at", TS, nullable=True),
        sa.UniqueConstraint("batch_id", name="uq_webhook_deliveries_batch"),
    )
    _backfill_search_text()
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE INDEX {SEARCH_INDEX} ON items USING gin (to_tsvector('simple', coalesce(search_text, '')))")


def search_text(input_: object, output: str | None, edited: str | None) -> str:
    """Frozen copy of service.storage.search.search_text (revisions never import live code)."""
    if isinstance(input_, str):
        input_ = json.loads(input_)
    return "\n".join(p for p in (json.dumps(input_, ensure_ascii=False, sort_keys=True), output or "", edited or "") if p)


def _backfill_search_text() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_items.c.id, _items.c.input, _items.c.output, _items.c.edited_output)).all()
    for item_id, input_, output, edited in rows:
        conn.execute(_items.update().where(_items.c.id == item_id)
                     .values(search_text=search_text(input_, output, edited)))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {SEARCH_INDEX}")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_feedback_labels_item_id", table_name="feedback_labels")
    op.drop_table("feedback_labels")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("search_text")
    with op.batch_alter_table("reviews") as batch:
        batch.drop_column("undoes_id")
        batch.drop_column("previous")
        batch.drop_column("attempt_id")
