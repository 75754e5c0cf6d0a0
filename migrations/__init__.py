"""Alembic environment and revisions. Self-contained: nothing here imports the live models."""
