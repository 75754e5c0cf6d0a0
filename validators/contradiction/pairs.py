"""Which sentence pairs to check: the NLI model costs a forward per pair, so a text of n sentences
gets at most n*k pairs (each sentence with its k most similar others above a similarity bar),
never all n^2/2."""

from __future__ import annotations

import torch

from validators.text import content_words


WINDOW = 256
"""Beyond this many sentences, each sentence is compared with the WINDOW sentences either side of it
(contradictions in long texts are mostly local), so the similarity work stays O(n * WINDOW)."""


def similar_pairs(embeddings: torch.Tensor, *, k: int = 3, min_similarity: float = 0.35,
                  max_pairs: int = 64) -> list[tuple[int, int, float]]:
    """embeddings (n, d), L2-normalised -> pairs (i < j, cosine), most similar first."""
    n = embeddings.shape[0]
    if n < 2:
        return []
    seen: dict[tuple[int, int], float] = {}
    block = WINDOW if n > 2 * WINDOW else n
    for start in range(0, n, block):
        rows = embeddings[start:start + block]  # (b, d)
        lo, hi = (max(0, start - WINDOW), min(n, start + block + WINDOW)) if n > 2 * WINDOW else (0, n)
        sims = rows @ embeddings[lo:hi].T  # (b, hi-lo)
        for r in range(rows.shape[0]):
            sims[r, start + r - lo] = -1.0  # not with itself
        top = sims.topk(min(k, hi - lo - 1), dim=-1)
        for r in range(rows.shape[0]):
            i = start + r
            for score, col in zip(top.values[r].tolist(), top.indices[r].tolist()):
                j = lo + col
                if score >= min_similarity:
                    seen[(min(i, j), max(i, j))] = score
    ranked = sorted(seen.items(), key=lambda kv: -kv[1])[:max_pairs]
    return [(i, j, s) for (i, j), s in ranked]


def lexical_pairs(texts: list[str], *, k: int = 3, max_pairs: int = 256) -> list[tuple[int, int, float]]:
    """Without an encoder: pairs sharing content words, via an inverted index (k per sentence)."""
    words = [content_words(t) for t in texts]
    index: dict[str, list[int]] = {}
    for i, ws in enumerate(words):
        for w in ws:
            index.setdefault(w, []).append(i)
    pairs: dict[tuple[int, int], float] = {}
    for i, ws in enumerate(words):
        counts: dict[int, int] = {}
        for w in ws:
            postings = index[w]
            if len(postings) > 50:  # a word in every sentence says nothing about a pair
                continue
            for j in postings:
                if j != i:
                    counts[j] = counts.get(j, 0) + 1
        for j, c in sorted(counts.items(), key=lambda kv: -kv[1])[:k]:
            score = c / max(1, len(ws | words[j]))
            pairs[(min(i, j), max(i, j))] = score
    return [(i, j, s) for (i, j), s in sorted(pairs.items(), key=lambda kv: -kv[1])[:max_pairs]]
