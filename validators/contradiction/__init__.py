"""Contradiction checks: sentence splitting, rules (negation, numbers, antonyms), an NLI model, and the
pair selection that keeps the NLI cost linear in the text length."""
