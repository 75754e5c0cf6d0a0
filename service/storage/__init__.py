"""Relational storage: SQLAlchemy models, engine/session setup, migrations runner and queries."""
