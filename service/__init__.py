"""The records side of hybridgen: what was asked for, what was made, and what people decided about it.

storage (SQLAlchemy models and queries), the input spec and its modes, submission, accounts and API
tokens, reviews and export. It imports nothing from `pipeline/` (the generation flow), which uses it to
claim items and store attempts.
"""
