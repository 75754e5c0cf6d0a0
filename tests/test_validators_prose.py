"""The prose validators built from the labelled defect set: meta debris, garbled text, near-duplicates,
and the parts (sections, record fields) their deletion tests judge."""

from __future__ import annotations

import json

from validators.base import ValidationContext
from validators.degeneration import Degeneration
from validators.garbled import Garbled
from validators.json_field import OnJsonField
from validators.meta_debris import MetaDebris
from validators.prose_parts import article_parts, product_parts
from validators.text import sentences

ARTICLE = ValidationContext("article", {"topic": "composting at home", "sections": 2})
PRODUCT = ValidationContext("product", {"name": "Aurora Travel Mug", "attributes": {"capacity": "350 ml"}})
GOOD = ("Compost turns kitchen scraps into soil. Keep the pile moist and turn it every week. "
        "Green waste adds nitrogen, and brown waste adds carbon.")


def article(*bodies: str) -> str:
    return "# Composting at Home\n\n" + "\n\n".join(f"## Part {i}\n\n{b}" for i, b in enumerate(bodies, 1)) + "\n"


def record(description: str, tagline: str = "Hot coffee for the road") -> str:
    return json.dumps({"title": "Aurora Travel Mug", "tagline": tagline, "facts": ["Capacity: 350 ml"],
                       "description": description, "attributes": {"capacity": "350 ml"}})


def test_parts_carry_offsets_into_the_whole_output():
    text = article(GOOD, "Turn the pile. It needs air.")
    parts = article_parts(text)
    assert [p.heading for p in parts] == ["Part 1", "Part 2"]
    for part in parts:
        assert all(text[s.start:s.end] == s.text for s in part.sentences)
    out = record("It holds 350 ml. The lid \"clicks\" shut.")
    [tagline, description, fact] = product_parts(out)
    assert (tagline.name, description.name, fact.name) == ("tagline", "description", "facts[0]")
    assert out[tagline.sentences[0].start:tagline.sentences[0].end] == "Hot coffee for the road"
    assert product_parts("{not json") == []


def test_a_section_of_only_meta_text_is_critical_and_one_meta_sentence_is_minor():
    meta = ("The article discusses composting at home. It also highlights the importance of air. "
            "In this article, the author explains how to start.")
    report = MetaDebris().check(article(GOOD, meta), ARTICLE)
    assert not report.passed and "section 2" in report.message
    assert {e.text for e in report.evidence} >= {"It also highlights the importance of air."}, \
        "a pronoun carrying the meta subject on is debris too"
    minor = MetaDebris().check(article(GOOD + " I hope this helps!", GOOD), ARTICLE)
    assert minor.passed and minor.details["minor"] == ["I hope this helps!"]
    assert MetaDebris().check(article(GOOD, GOOD), ARTICLE).evidence == ()


def test_meta_debris_deletion_test_does_not_count_repeated_headlines_as_content():
    body = "Write one paragraph. Compost at home works. Write one paragraph. Compost at home works."
    assert not MetaDebris().check(article(GOOD, body), ARTICLE).passed


def test_content_that_mentions_discussion_is_not_debris():
    text = article("Compost has been discussed by gardeners for centuries. Sure enough, it works well in cities.", GOOD)
    assert MetaDebris().check(text, ARTICLE).evidence == ()


def test_meta_debris_in_a_product_description():
    report = MetaDebris().check(record("This product description covers the mug. Here is the record you asked for."),
                                PRODUCT)
    assert not report.passed and "description" in report.message


def test_garbled_signals_and_the_half_rule():
    garbage = "5.3.1.1.1.1.1.1.1. Children die of cerebral bl. THE HOUR MOBILE DEINA HUMAN RIGHTS."
    report = Garbled().check(article(GOOD, garbage), ARTICLE)
    assert not report.passed and "section 2" in report.message
    one = Garbled().check(article(GOOD + " It ships with 18V, 18V, 18V, 18V.", GOOD), ARTICLE)
    assert one.passed and len(one.details["minor"]) == 1, "one bad sentence of four is minor"
    assert Garbled().check(record(GOOD, tagline="Mercil 2023-01 | 2023-02 | 2023-03 | 2023-04 |"), PRODUCT).passed, \
        "a garbled tagline is minor"
    clean = article("It is a 350 ml mug. Use it at 8 a.m. or at noon. Prices start at 12.50 euros.", GOOD)
    assert Garbled().check(clean, ARTICLE).evidence == ()


def test_near_duplicate_sentences_three_times_are_repetition():
    loop = ("The league was a powerful trading organization that shaped the European economy. "
            "Its ships carried grain and timber. "
            "The league was a powerful and influential organization that shaped the European economy. "
            "The league was an influential trading organization that shaped the European economy greatly.")
    report = Degeneration(min_words=5).check(loop, ARTICLE)
    assert not report.passed and "near-duplicate sentence 3 times" in report.message
    assert Degeneration(min_words=5).check(GOOD, ARTICLE).passed


def test_a_record_that_does_not_parse_is_still_checked_for_loops():
    broken = '{"title": "Drill", "tagline": "' + "18V, " * 60
    report = OnJsonField(Degeneration(min_words=5), "description").check(broken, PRODUCT)
    assert not report.passed and "no text field 'description'" in report.message and "repetitive" in report.message


def test_abbreviations_do_not_end_a_sentence():
    assert [s.text for s in sentences("It ends with a quote from Dr. Emma Taylor. Then it stops.")] == \
        ["It ends with a quote from Dr. Emma Taylor.", "Then it stops."]


def test_a_section_mostly_about_something_else_is_off_topic():
    from validators.registry import sentence_encoder
    from validators.topicality import Topicality

    encoder = sentence_encoder()
    off = ("The 2022 World Cup drew record crowds in Qatar. Football fans sang in the stadiums all night. "
           "The final went to penalties after extra time.")
    report = Topicality(encoder).check(article(GOOD, off), ARTICLE)
    assert not report.passed and "section 2" in report.message
    assert all("World Cup" in e.text or "Football" in e.text or "penalties" in e.text for e in report.evidence)
    assert Topicality(encoder).check(article(GOOD, "Worms break scraps down quickly. A compost bin keeps "
                                                   "the pile warm and tidy."), ARTICLE).passed


def test_the_encoder_cache_returns_what_the_encoder_computes():
    import torch

    from validators.registry import sentence_encoder

    encoder = sentence_encoder()
    texts = ["Compost needs air.", "Tea comes from leaves.", "Compost needs air."]
    cached = encoder.encode(texts)
    assert torch.allclose(cached, encoder.embed(texts), atol=1e-5) and torch.equal(cached[0], cached[2])
    assert torch.equal(encoder.encode(texts[:1])[0], cached[0]), "a second call reads the cache"


def test_a_record_that_calls_the_product_another_kind_of_thing():
    from validators.category import CategoryError

    monitor = ValidationContext("product", {"name": "Nimbus 27 4K Monitor", "attributes": {"screen size": "27 in"}})
    laptop = record("The Nimbus 27 4K Monitor is a high-end gaming laptop with a 27-inch screen.")
    report = CategoryError().check(laptop, monitor)
    assert not report.passed and "laptop" in report.message and report.evidence[0].text.startswith("The Nimbus")
    socks = ValidationContext("product", {"name": "Trailhead Merino Hiking Socks", "attributes": {"pairs": 3}})
    assert not CategoryError().check(record("The shoes are made with soft leather."), socks).passed
    assert not CategoryError().check(record("Warm feet.", tagline="The Ultimate Knitting App"), socks).passed
    fine = ("The socks are made of merino wool. If you are a fan of long walks, they are a great choice. "
            "A mug of coffee and warm feet.")
    assert CategoryError().check(record(fine), socks).passed, "a fan of walks, the socks' own type, contents"
    jacket = ValidationContext("product", {"name": "Harbor Rain Jacket", "attributes": {"hood": "adjustable"}})
    assert CategoryError().check(record("The coat is fully waterproof."), jacket).passed, "a jacket is a coat"


def test_a_record_that_does_not_parse_still_shows_its_prose_fields():
    parts = product_parts('{"title": "Mug", "tagline": "Hot \\"coffee\\" to go", "facts": [{"title": "Mug", "tag')
    assert [p.name for p in parts] == ["tagline"] and parts[0].sentences[0].text == 'Hot "coffee" to go'
