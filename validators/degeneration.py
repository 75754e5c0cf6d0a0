"""Degeneration: empty or too short output, repeated n-grams and loops, truncation mid-sentence,
leaked prompt text or special tokens, non-printable characters."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from validators.base import Evidence, Report, ValidationContext
from validators.text import content_words, jaccard, sentences, words

SPECIAL_TOKENS = re.compile(r"<\|[a-z_]+\|>|<(?:empty_output|filename|reponame|repo_name|file_sep|gh_stars|jupyter_\w+|issue_\w+)>")
PROMPT_LEAKS = ("write the section", "use only these facts", "reply with only the code", "write one paragraph",
                "you are a helpful", "as an ai language model", "it must pass these tests")
NON_PRINTABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")


@dataclass(frozen=True)
class Degeneration:
    name: str = "degeneration"
    min_words: int = 8
    ngram: int = 4
    max_repeated_ngram_share: float = 0.3
    """Share of n-grams that are repeats above which text counts as looping."""
    max_sentence_repeats: int = 2
    near_duplicate_jaccard: float = 0.6
    """Content-word overlap at which two sentences say the same thing (a near-duplicate)."""
    prose: bool = True
    """Prose must end with sentence punctuation; code is exempt (its syntax validator judges it)."""
    extra_leaks: tuple[str, ...] = field(default_factory=tuple)

    def check(self, text: str, context: ValidationContext) -> Report:
        problems: list[str] = []
        evidence: list[Evidence] = []
        toks = words(text)
        if len(toks) < self.min_words:
            problems.append(f"too short: {len(toks)} words (at least {self.min_words})")
        for m in NON_PRINTABLE.finditer(text):
            problems.append(f"non-printable character {text[m.start()]!r} at offset {m.start()}")
            evidence.append(Evidence(m.start(), m.end(), text[m.start():m.end()], "non-printable"))
            break
        for m in SPECIAL_TOKENS.finditer(text):
            problems.append(f"leaked special token {m.group(0)}")
            evidence.append(Evidence(m.start(), m.end(), m.group(0), "special token"))
            break
        lowered = text.lower()
        for leak in PROMPT_LEAKS + self.extra_leaks:
            at = lowered.find(leak)
            if at >= 0:
                problems.append(f"prompt text leaked: {text[at:at + len(leak)]!r}")
                evidence.append(Evidence(at, at + len(leak), text[at:at + len(leak)], "prompt leak"))
                break
        share = repeated_ngram_share(toks, self.ngram)
        if share > self.max_repeated_ngram_share:
            problems.append(f"repetitive: {share:.0%} of {self.ngram}-grams are repeats")
        sents = sentences(text)
        counts = Counter(s.text.lower() for s in sents if len(s.text.split()) >= 3)
        exact_repeat = False
        for sent_text, n in counts.items():
            if n > self.max_sentence_repeats:
                exact_repeat = True
                first = next(s for s in sents if s.text.lower() == sent_text)
                problems.append(f"sentence repeated {n} times: {first.text[:60]!r}")
                evidence.append(Evidence(first.start, first.end, first.text, f"repeated {n} times"))
                break
        if not exact_repeat:
            copies = near_duplicate_copies(sents, self.near_duplicate_jaccard)
            if copies and len(copies) > self.max_sentence_repeats:
                problems.append(f"near-duplicate sentence {len(copies)} times: {copies[1].text[:60]!r}")
                evidence.append(Evidence(copies[1].start, copies[1].end, copies[1].text,
                                         f"near-duplicate of {copies[0].text[:60]!r}"))
        if self.prose and sents:
            last = sents[-1].text
            if not last.startswith("#") and not re.search(r"[.!?:;\"')\]*`]$", last):
                problems.append(f"ends mid-sentence: ...{last[-40:]!r}")
                evidence.append(Evidence(sents[-1].start, sents[-1].end, last, "truncated"))
        if problems:
            return Report(self.name, False, max(0.0, 1 - 0.25 * len(problems)), "; ".join(problems), tuple(evidence),
                          {"repeated_ngram_share": round(share, 3)})
        return Report(self.name, True, 1.0, "no degeneration found", details={"repeated_ngram_share": round(share, 3)})


def near_duplicate_copies(sents: list, threshold: float) -> list:
    """The largest group of sentences that restate one another (content-word Jaccard >= threshold to its
    first member), in text order; sentences of fewer than 5 content words are not compared."""
    bags = [(s, content_words(s.text)) for s in sents if not s.text.startswith("#")]
    bags = [(s, b) for s, b in bags if len(b) >= 5]
    best: list = []
    for i, (s, bag) in enumerate(bags):
        group = [s] + [t for t, other in bags[i + 1:] if jaccard(bag, other) >= threshold]
        if len(group) > len(best):
            best = group
    return best


def repeated_ngram_share(toks: list[str], n: int) -> float:
    grams = [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]
    if not grams:
        return 0.0
    counts = Counter(grams)
    return sum(c - 1 for c in counts.values()) / len(grams)
