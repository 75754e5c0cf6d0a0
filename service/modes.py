"""The generation modes a batch (or a job's `params.mode`) can ask for.

    hybrid  AR plan -> refiner spans -> validate -> sampled retries -> AR fallback    (the default)
    ar      the same plan, AR-written spans, the same retries, no fallback: isolates what the refiner adds
    plain   one plain chat prompt per item for the whole deliverable, the same validators and retries:
            the user's alternative, the baseline the planned modes must beat (DESIGN.md §1)
"""

from __future__ import annotations

MODES = ("hybrid", "ar", "plain")
