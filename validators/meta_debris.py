"""Meta debris: the assistant's voice, text about the text, prompt echoes, in place of content.

    "Sure! Here is the article:"           chat
    "The article discusses composting."    meta: the text talks about itself
    "Write one paragraph."                 the prompt echoed back

Judged per prose part (validators/prose_parts.py) with the rubric's deletion test: when deleting the
debris leaves a part with no complete sentence, it is critical and the check fails; otherwise the
debris is minor (a reviewer deletes a sentence) and listed in `details["minor"]` with its evidence.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from validators.base import Evidence, Report, ValidationContext
from validators.prose_parts import is_sentence, parts_of

TEXT_NOUN = r"(?:article|section|post|paragraph|essay|guide|piece|text|story|blog|description|record|summary|passage)"
DEBRIS = re.compile("|".join([
    r"^(?:sure|certainly|of course|absolutely)\b[!,.]",
    r"\bhere(?:'s| is| are)\b (?:a |an |the |your |my )?(?:sample|revised|rewritten|improved|edited|new|possible|short|brief)?"
    rf"\s*(?:of )?(?:a |an |the )?(?:version|{TEXT_NOUN}|product|rewrite|draft|response|answer|list|example)",
    r"\b(?:below|above) is\b",
    # The text talking about itself: in an article or a record, "the article" / "this paragraph" is never content.
    r"\b(?:the|this|our|my|that) (?:article|paragraph|section|essay|blog post|post|text|author|passage|"
    r"product description|edited paragraph|rewritten paragraph)\b",
    rf"\bin (?:this|the|our) {TEXT_NOUN}\b",
    r"\bis a must-read\b",
    r"\bis an? (?:great|good|excellent|informative|comprehensive|helpful|well-written|must-read) (?:article|guide|read|post"
    r"|piece|resource)\b",
    r"\b(?:feel free to|i hope (?:this|you)|let me know|happy to help|if you have any (?:more |other |further )?questions"
    r"|as an ai\b|i'm sorry|i am sorry|i cannot)",
    r"^p\.?s\.?\b",
    r"\b(?:write|use) (?:one|a|only|the) (?:paragraph|sentence|facts?|section|heading|these facts)\b",
    r"\bwe will (?:begin|start|discuss|explore|look)\b",
    r"\b(?:let's|let us) (?:dive|explore|take a look|begin|start)\b",
    r"\bhas been (?:edited|rewritten|revised)\b",
]), re.IGNORECASE)


# "It also touches on ..." after "The article discusses ...": the same meta subject, carried by a pronoun.
CONTINUATION = re.compile(r"^(?:it|this|they)\b[^.!?]{0,20}\b(?:also |then |further |goes on to )?(?:begins|starts|"
                          r"provides|touches|highlights|explains|mentions|discusses|covers|includes|ends|concludes|"
                          r"offers|describes|explores|emphasi[sz]es|notes|delves|introduces|tells|outlines)\b",
                          re.IGNORECASE)


def debris_sentences(part) -> list:
    found = []
    for s in part.sentences:
        if DEBRIS.search(s.text) or (found and found[-1] is previous and CONTINUATION.search(s.text)):
            found.append(s)
        previous = s
    return found


def kept(part, debris) -> list:
    """The part's sentences a reviewer would keep after deleting the debris: complete sentences that
    are not copies of another one or of the heading (a headline line repeated is not content)."""
    def key(s) -> str:
        return s.text.strip(" \"'*").lower().rstrip(".!?\"'")

    copies = Counter(key(s) for s in part.sentences)
    heading = part.heading.strip(" #*").lower()
    return [s for s in part.sentences
            if s not in debris and is_sentence(s) and key(s) != heading and copies[key(s)] == 1]


@dataclass(frozen=True)
class MetaDebris:
    name: str = "meta_debris"

    def check(self, text: str, context: ValidationContext) -> Report:
        critical, minor = [], []
        for part in parts_of(text, context.kind):
            debris = debris_sentences(part)
            if not debris:
                continue
            left = kept(part, debris)
            found = [Evidence(s.start, s.end, s.text, f"meta debris in {part.name}") for s in debris]
            (minor if left else critical).extend(found)
        if critical:
            where = sorted({e.note.removeprefix("meta debris in ") for e in critical})
            return Report(self.name, False, 0.0, f"only chat or meta text in {', '.join(where)}: "
                          f"{critical[0].text[:80]!r}", tuple(critical + minor),
                          {"minor": [e.text for e in minor]})
        return Report(self.name, True, 1.0, f"{len(minor)} minor debris sentences" if minor else "no meta debris",
                      tuple(minor), {"minor": [e.text for e in minor]})
