"""Markdown structure and degeneration validators, and the sentence splitter they rely on."""

from __future__ import annotations

import pytest

from validators.base import ValidationContext
from validators.degeneration import Degeneration
from validators.markdown_structure import MarkdownStructure
from validators.text import sentences

PLAN = {"title": "Tea", "sections": [{"heading": "Origins", "points": []}, {"heading": "Brewing", "points": []}]}
CTX = ValidationContext(kind="article", plan=PLAN)
GOOD = ("# Tea\n\n## Origins\n\nTea was first brewed in China thousands of years ago, as a medicine.\n\n"
        "## Brewing\n\nUse water just off the boil and steep the leaves for three minutes.\n")


def test_sentences_keep_offsets_and_split_headings():
    text = "## Title\nFirst one. Second one? Third!\n\nNew para."
    got = sentences(text)
    assert [s.text for s in got] == ["## Title", "First one.", "Second one?", "Third!", "New para."]
    assert all(text[s.start:s.end] == s.text for s in got)


def test_markdown_structure_passes_planned_headings_in_order():
    assert MarkdownStructure().check(GOOD, CTX).passed


@pytest.mark.parametrize("text, expected", [
    (GOOD.replace("## Brewing", "## Steeping"), "heading 'Brewing' missing"),
    ("# Tea\n\n## Brewing\n\nUse water just off the boil and steep it well.\n\n## Origins\n\n"
     "Tea was first brewed in China long ago as a medicine.\n", "heading 'Brewing' out of order"),
    (GOOD.replace("Use water just off the boil and steep the leaves for three minutes.", ""),
     "section 'Brewing' has an empty or too short body"),
])
def test_markdown_structure_failures_name_the_heading(text, expected):
    report = MarkdownStructure().check(text, CTX)
    assert not report.passed and expected in report.message


def test_markdown_without_plan_uses_input_headings_or_needs_any_heading():
    ctx = ValidationContext(kind="article", input={"sections": ["Origins", "Brewing"]})
    assert MarkdownStructure().check(GOOD, ctx).passed
    assert not MarkdownStructure().check("no headings here at all", ValidationContext(kind="article")).passed


def test_degeneration_passes_normal_prose():
    report = Degeneration(min_words=8).check(GOOD, CTX)
    assert report.passed, report.message


@pytest.mark.parametrize("text, expected", [
    ("", "too short: 0 words"),
    ("Too short.", "too short"),
    ("The mug is great and the mug is great and the mug is great and the mug is great and the mug is great.",
     "repetitive"),
    ("It is good. " * 4 + "Something else entirely here.", "sentence repeated 4 times"),
    ("A fine paragraph about tea that simply stops in the middle of a", "ends mid-sentence"),
    ("A fine paragraph about tea with a leaked token <|im_end|> in it, sadly.", "leaked special token <|im_end|>"),
    ("Write the section about tea for beginners, then more words follow here.", "prompt text leaked"),
    ("A fine paragraph about tea with a control \x07 character inside it.", "non-printable character"),
    ("A fine paragraph \ufffd about tea after bad bytes were decoded into it.", "non-printable character"),
])
def test_degeneration_failures(text, expected):
    report = Degeneration(min_words=8).check(text, CTX)
    assert not report.passed and expected in report.message


def test_degeneration_evidence_points_into_the_text():
    text = "A fine paragraph about tea with a leaked token <|im_end|> in it, sadly."
    ev = Degeneration(min_words=3).check(text, CTX).evidence[0]
    assert text[ev.start:ev.end] == "<|im_end|>"


def test_huge_input_is_handled():
    text = ("Tea is a drink made from leaves. " * 20000)
    report = Degeneration().check(text, CTX)
    assert not report.passed and "repeated" in report.message
