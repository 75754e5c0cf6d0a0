"""Off-topic text: a section (or a product description) mostly about something other than the job.

Each sentence is embedded (MiniLM, validators/contradiction/encoder.py) beside anchors that say what
the part must be about: the article's topic, and the topic with the section's heading; the product's
name, and the name with its attribute values. A sentence whose best cosine to an anchor is under
`threshold` is off-topic. Deletion test (docs/review-rubric.md `off-topic`): when at least half of a
section body's or the description's sentences are off-topic, the check fails (critical); fewer are
minor and listed in `details["minor"]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from validators.base import Evidence, Report, ValidationContext
from validators.prose_parts import Part, parts_of


@dataclass(frozen=True)
class Topicality:
    encoder: Any
    """A SentenceEncoder: encode(list[str]) -> unit-norm embeddings [n, d]."""
    threshold: float = 0.25
    name: str = "topicality"

    def check(self, text: str, context: ValidationContext) -> Report:
        critical, minor = [], []
        parts = [p for p in parts_of(text, context.kind)
                 if p.is_body and p.sentences]
        # One encoder call for every sentence and every anchor of the output.
        anchors = [anchors_for(p, context) for p in parts]
        texts = list(dict.fromkeys([s.text for p in parts for s in p.sentences] + [a for x in anchors for a in x]))
        vectors = dict(zip(texts, self.encoder.encode(texts))) if texts else {}
        for part, part_anchors in zip(parts, anchors):
            # [n_sentences, d] @ [d, n_anchors] -> the best anchor per sentence
            sims = (torch.stack([vectors[s.text] for s in part.sentences])
                    @ torch.stack([vectors[a] for a in part_anchors]).T).max(dim=1).values.tolist()
            off = [(s, sim) for s, sim in zip(part.sentences, sims) if sim < self.threshold]
            evidence = [Evidence(s.start, s.end, s.text, f"off-topic in {part.name} (similarity {sim:.2f})")
                        for s, sim in off]
            (critical if off and 2 * len(off) >= len(part.sentences) else minor).extend(evidence)
        details = {"minor": [e.text for e in minor], "threshold": self.threshold}
        if critical:
            return Report(self.name, False, 0.0, f"mostly off-topic: {critical[0].note}: {critical[0].text[:80]!r}",
                          tuple(critical + minor), details)
        return Report(self.name, True, 1.0, f"{len(minor)} off-topic sentences" if minor else "on topic",
                      tuple(minor), details)


def anchors_for(part: Part, context: ValidationContext) -> list[str]:
    job = context.input
    if context.kind == "article":
        topic = str(job.get("topic", ""))
        return [topic, f"{topic}: {part.heading}"] if part.heading else [topic]
    name = str(job.get("name", ""))
    values = "; ".join(f"{k}: {v}" for k, v in (job.get("attributes") or {}).items())
    return [name, f"{name}. {values}"]
