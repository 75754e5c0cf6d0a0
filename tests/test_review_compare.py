"""The item page's comparison without a browser: rendering and sanitising, the word diff, which output
is marked final, feedback labels, and the field-by-field edit (its rules and its POST route)."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from sqlalchemy import select

from hybridgen.admin.compare import input_rows
from hybridgen.admin.edit_fields import assembled, form_from_output, form_from_post
from hybridgen.admin.item_page import item_page
from hybridgen.admin.render_output import (
    product_card, pygments_css, readable_text, render_code, render_markdown, render_output,
)
from hybridgen.admin.services import AppServices
from hybridgen.admin.word_diff import MAX_DIFF_WORDS, word_diff
from hybridgen.app import create_app
from pipeline.settings import Settings
from service.feedback import (
    DEFECT_CLASSES, FeedbackError, classes_for, false_flag_counts, feedback_labels, missed_defect_counts,
    record_false_flag, record_missed_defect,
)
from service.reviews import review_items
from service.storage.db import session_factory
from service.storage.models import Attempt, Feedback, Item, Review, User
from tests.compare_fixtures import ATTRIBUTES, HYBRID_CODE, HYBRID_RECORD, REPEATED, seed_compare_data
from tests.conftest import REPO
from tests.live_server import LiveServer
from tests.review_fixtures import ADMIN, ADMIN_PASSWORD, seed_review_data

# The validators that load models (NLI, sentence encoder) or run the sandbox stay off in these tests.
MODEL_FREE = "contradiction,product_attributes,sandbox_tests"


# -- rendering and sanitising ------------------------------------------------------------------

def test_markdown_is_rendered_without_raw_html_scripts_or_unsafe_links():
    html = str(render_markdown(
        "# Tea <script>alert(1)</script>\n\n"
        "<img src=x onerror=alert(2)> [click](javascript:alert(3)) [data](data:text/html,<b>x</b>) "
        "[site](https://example.org/a) [mail](mailto:a@example.org) [rel](/admin/logout) ![pic](https://x.test/p.png)\n\n"
        "## Brewing\n\nSteep *three* minutes."))
    assert "<h1>Tea &lt;script&gt;alert(1)&lt;/script&gt;</h1>" in html
    assert "<script" not in html and "<img" not in html and "onerror=alert" not in html.replace("&lt;img src=x onerror=alert(2)&gt;", "")
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs == ["https://example.org/a", "mailto:a@example.org", "https://x.test/p.png"], \
        "only http(s) and mailto links survive; an image is a link at most, never loaded"
    assert "[click](javascript:alert(3))" in html, "a refused link stays as its text"
    assert 'rel="nofollow noopener noreferrer"' in html
    assert "<h2>Brewing</h2>" in html and "<em>three</em>" in html


def test_markdown_marks_failing_evidence_and_colours_fenced_code():
    text = "# Museum\n\n## Visiting\n\nThe museum is open every day. The museum is closed on Mondays.\n\n" \
           "```python\nprint('<x>')\n```\n"
    report = {"validator": "contradiction", "passed": False, "message": "contradiction",
              "evidence": [{"start": 0, "end": 1, "text": "The museum is closed on Mondays.", "note": "<b>why</b>"}]}
    html = str(render_markdown(text, [report]))
    assert '<mark class="evidence" title="&lt;b&gt;why&lt;/b&gt;">The museum is closed on Mondays.</mark>' in html
    assert '<pre class="highlight"><code>' in html and "'&lt;x&gt;'" in html and "<x>" not in html
    passing = {**report, "passed": True}
    assert "<mark" not in str(render_markdown(text, [passing])), "only failing reports are marked"


def test_product_fields_are_escaped_and_shown_as_a_card():
    record = {"title": "<script>alert(1)</script>Mug", "tagline": "<b>hot</b>", "facts": ["<i>a</i>", "b"],
              "description": "Nice <a href='javascript:x'>mug</a>.", "attributes": {"<k>": "<v>", "safe": False},
              "extra<": "x"}
    html = str(product_card(record))
    for raw in ("<script", "<b>", "<i>", "<a href", "<k>", "<v>", "extra<"):
        assert raw not in html, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;Mug" in html and "&lt;b&gt;hot&lt;/b&gt;" in html
    assert "<dt>&lt;k&gt;</dt><dd>&lt;v&gt;</dd>" in html and "<dd>no</dd>" in html
    assert "extra field" in html
    missing = str(product_card({"title": "T"}))
    assert missing.count('class="missing"') >= 3


def test_product_evidence_is_marked_in_its_own_field_at_its_offset():
    description = HYBRID_RECORD["description"]
    second = description.index(REPEATED, 1)
    report = {"validator": "degeneration[description]", "passed": False, "message": "repeated",
              "details": {"field": "description"},
              "evidence": [{"start": second, "end": second + len(REPEATED), "text": REPEATED}]}
    html = str(product_card({**HYBRID_RECORD, "tagline": REPEATED}, [report]))
    assert html.count("<mark") == 1, "a report on the description marks nothing in the tagline"
    marked_at = html.index("<mark")
    assert html.index(REPEATED, html.index("product-description")) < marked_at, "the second copy is marked"


def test_product_that_is_not_json_is_shown_as_text_with_the_reason():
    rendered = render_output("product", '{"title": "<b>x</b>", ')
    assert rendered.problem and rendered.problem.startswith("not JSON")
    assert "&lt;b&gt;x&lt;/b&gt;" in str(rendered.html) and "<b>" not in str(rendered.html)
    assert render_output("product", "[1, 2]").problem.startswith("a product record must be a JSON object")


def test_code_is_highlighted_escaped_and_evidence_lines_banded():
    code = "def f(x):\n    return '<script>'\n"
    report = {"validator": "python_syntax", "passed": False, "evidence": [{"start": 0, "end": 0,
                                                                          "text": "return '<script>'"}]}
    html = str(render_code(code, [report]))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<span class="k">def</span>' in html
    assert html.count('<span class="hll">') == 1 and '<span class="hll">    <span class="k">return' in html


def test_pygments_css_file_is_up_to_date():
    css = (REPO / "hybridgen" / "static" / "pygments.css").read_text()
    assert pygments_css() in css, "regenerate hybridgen/static/pygments.css from render_output.pygments_css()"


def test_readable_text_of_a_product_is_its_written_fields():
    text = readable_text("product", json.dumps(HYBRID_RECORD))
    assert text.startswith("<b>Aurora</b> Travel Mug\n\nHot drinks") and "- Capacity: 350 ml" in text
    assert "stainless steel\"" not in text and "attributes" not in text
    assert readable_text("product", "not json") == "not json"


# -- word diff -----------------------------------------------------------------------------------

def test_word_diff_marks_insertions_and_deletions_and_escapes():
    d = word_diff("The cat sat on the <mat>.\nEnd", "The dog sat on the <mat>.\nEnd <script>")
    html = str(d.html)
    assert '<del class="diff-del">cat</del><ins class="diff-ins">dog</ins>' in html
    assert '<ins class="diff-ins">&lt;script&gt;</ins>' in html and "<script>" not in html
    assert "&lt;mat&gt;.\nEnd" in html, "unchanged text stays, escaped, with its line breaks"
    assert (d.inserted, d.deleted, d.same) == (2, 1, False)
    same = word_diff("a  b\nc", "a  b\nc")
    assert same.same and str(same.html) == "a  b\nc"
    assert word_diff("", "new words").inserted == 2


def test_word_diff_reads_a_rewrite_as_one_deletion_and_one_insertion():
    d = word_diff("Hot drinks for your commute. Wash it.", "Coffee that stays hot on the way. Wash it.")
    assert str(d.html) == ('<del class="diff-del">Hot drinks for your commute</del>'
                           '<ins class="diff-ins">Coffee that stays hot on the way</ins>. Wash it.')
    code = word_diff("def add(a, b):\n    return a + b\n", "def add(a, b)\n    return a + b\n")
    assert str(code.html) == 'def add(a, b)<del class="diff-del">:</del>\n    return a + b\n', \
        "punctuation is a token of its own"
    assert (code.deleted, code.inserted, code.same) == (0, 0, False), "a punctuation change is a change"
    assert str(word_diff("a b c d e", "a b X d e").html) == 'a b <del class="diff-del">c</del><ins class="diff-ins">X</ins> d e'


def test_word_diff_refuses_texts_past_its_limit():
    long = "word " * (MAX_DIFF_WORDS + 1)
    d = word_diff(long, "short")
    assert d.too_long and not d.same and "too long to diff" in str(d.html)


# -- the comparison: which output is final, and "use this version" -------------------------------

@pytest.fixture
def seeded(migrated_sqlite):
    review = seed_review_data(migrated_sqlite)
    extra = seed_compare_data(migrated_sqlite)
    return migrated_sqlite, review, extra


def test_final_output_is_marked_not_repeated(seeded):
    url, review, extra = seeded
    with session_factory(url)() as s:
        page = item_page(s, review.flagged_id)
        cmp = page.comparison
        assert [(a.attempt.path, a.is_exported, a.can_use) for a in cmp.attempts] == \
            [("hybrid", False, True), ("ar_fallback", True, False)]
        assert cmp.edited is None and cmp.exported_label == "the fallback output"
        assert [d.title for d in cmp.diffs] == ["hybrid → fallback"]
        assert '<del class="diff-del">Tickets</del><ins class="diff-ins">Entry</ins>' in str(cmp.diffs[0].diff.html)
        final = cmp.attempts[1]
        assert str(final.rendered.html).count("<mark") == 2 and final.evidence_shown
        assert str(final.output_html).count("<mark") == 2, "the source view keeps the evidence"


def test_use_this_version_makes_the_hybrid_output_final(seeded):
    url, review, extra = seeded
    sessions = session_factory(url)
    with sessions.begin() as s:
        alice = s.execute(select(User)).scalar_one()
        hybrid = s.execute(select(Attempt).where(Attempt.item_id == extra.code_id, Attempt.path == "hybrid")).scalar_one()
        review_items(s, [extra.code_id], "use_attempt", alice, attempt_id=hybrid.id)
    with sessions() as s:
        cmp = item_page(s, extra.code_id).comparison
        assert [(a.attempt.path, a.is_exported, a.is_final, a.can_use) for a in cmp.attempts] == \
            [("hybrid", True, False, False), ("ar_fallback", False, True, True)]
        assert cmp.edited is None, "the chosen attempt is marked, not shown again as an edit"
        assert cmp.exported_label == "the hybrid output, chosen by a reviewer"
        assert s.get(Item, extra.code_id).edited_output == HYBRID_CODE


def test_an_edit_of_its_own_gets_one_card_and_a_diff_against_the_gate(seeded):
    url, review, extra = seeded
    with session_factory(url).begin() as s:
        alice = s.execute(select(User)).scalar_one()
        review_items(s, [extra.code_id], "edit", alice, edited_output="def add(a, b):\n    return b + a\n")
        cmp = item_page(s, extra.code_id).comparison
        assert not any(a.is_exported for a in cmp.attempts) and all(a.can_use for a in cmp.attempts)
        assert cmp.edited is not None and "return" in str(cmp.edited.html)
        assert [d.title for d in cmp.diffs] == ["hybrid → fallback", "fallback → your edit"]
        assert cmp.exported_label == "the reviewer's edit"


def test_input_rows_show_attributes_and_code_as_code():
    rows = dict(input_rows("product", {"name": "<Mug>", "attributes": {"capacity": "350 ml", "safe": True}}))
    assert str(rows["name"]) == "&lt;Mug&gt;"
    assert "<dt>capacity</dt><dd>350 ml</dd>" in str(rows["attributes"]) and "<dd>yes</dd>" in str(rows["attributes"])
    code = dict(input_rows("code", {"prompt": "def f(x):\n    '''Double x.'''\n", "tests": ["assert f(1) == 2"],
                                    "test_setup": ""}))
    assert 'class="highlight code-output"' in str(code["prompt"]) and "test_setup" not in code
    task = dict(input_rows("code", {"prompt": "Write f(x), twice <x>."}))
    assert "highlight" not in str(task["prompt"]) and "&lt;x&gt;" in str(task["prompt"])


# -- feedback ------------------------------------------------------------------------------------

def test_rubric_classes_match_the_rubric_table():
    doc = (REPO / "docs" / "review-rubric.md").read_text()
    section = doc[doc.index("## 3. Defect classes"):doc.index("### `repetition`")]
    rows = re.findall(r"^\| `([a-z-]+)` \| ([ACP ]+) \|", section, flags=re.M)
    assert len(rows) == 18
    letters = {"article": "A", "product": "P", "code": "C"}
    assert [(name, set(kinds.split())) for name, kinds in rows] == \
        [(c.id, {letters[k] for k in c.kinds}) for c in DEFECT_CLASSES.values()]
    assert "hollow-code" not in {c.id for c in classes_for("product")}


def test_false_flag_and_missed_defect_are_stored_and_read_back_as_labels(seeded):
    url, review, extra = seeded
    with session_factory(url).begin() as s:
        alice = s.execute(select(User)).scalar_one()
        attempts = {a.path: a.id for a in s.execute(select(Attempt).where(Attempt.item_id == extra.product_id)).scalars()}
        flag = record_false_flag(s, extra.product_id, attempts["hybrid"], "degeneration[description]", alice,
                                 note="the repeat is a slogan")
        again = record_false_flag(s, extra.product_id, attempts["hybrid"], "degeneration[description]", alice)
        assert again.id == flag.id, "saying it twice stores it once"
        record_missed_defect(s, extra.product_id, attempts["ar_fallback"], "unsupported-claim", alice,
                             note="'for the whole commute'")
        with pytest.raises(FeedbackError, match="no failing report of 'json_schema'"):
            record_false_flag(s, extra.product_id, attempts["hybrid"], "json_schema", alice)
        with pytest.raises(FeedbackError, match="does not apply to a product"):
            record_missed_defect(s, extra.product_id, attempts["ar_fallback"], "hollow-code", alice)
        with pytest.raises(FeedbackError, match="no defect class"):
            record_missed_defect(s, extra.product_id, attempts["ar_fallback"], "ugly", alice)
        other = s.execute(select(Attempt).where(Attempt.item_id == extra.code_id)).scalars().first()
        with pytest.raises(FeedbackError, match="not one of its attempts"):
            record_false_flag(s, extra.product_id, other.id, "sandbox_tests", alice)
    with session_factory(url)() as s:
        assert s.execute(select(Feedback)).scalars().all().__len__() == 2
        labels = {line["output_id"]: line for line in feedback_labels(s)}
        hybrid_id = f"aurora-mug:hybrid:hybrid:a{attempts['hybrid']}"
        fallback_id = f"aurora-mug:hybrid:ar_fallback:a{attempts['ar_fallback']}"
        assert set(labels) == {hybrid_id, fallback_id}
        assert labels[hybrid_id]["defects"] == [] and labels[hybrid_id]["false_flags"] == ["degeneration[description]"]
        assert labels[hybrid_id]["notes"] == "false flag: degeneration[description] (the repeat is a slogan)"
        assert labels[fallback_id]["defects"] == [{"class": "unsupported-claim", "severity": "minor", "evidence": ""}]
        assert labels[fallback_id]["labeller"] == ADMIN and labels[fallback_id]["kind"] == "product"
        assert set(labels[fallback_id]) >= {"output_id", "labeller", "defects", "notes"}, "the rubric's section 5 keys"
        counts = false_flag_counts(s)
        assert counts["degeneration[description]"] == {"failing": 1, "false_flags": 1}
        assert missed_defect_counts(s) == {"unsupported-claim": 1}


def test_validators_benchmark_reads_feedback_as_a_labelled_set(seeded, capsys):
    from benchmarks.validators import feedback_json

    url, review, extra = seeded
    assert feedback_json(None) == {}
    with session_factory(url).begin() as s:
        alice = s.execute(select(User)).scalar_one()
        attempts = {a.path: a.id for a in s.execute(select(Attempt).where(Attempt.item_id == extra.code_id)).scalars()}
        record_false_flag(s, extra.code_id, attempts["hybrid"], "sandbox_tests", alice)
        record_missed_defect(s, extra.code_id, attempts["hybrid"], "hollow-code", alice)
    result = feedback_json(url)
    assert result["feedback_outputs"] == 1
    assert result["feedback_false_flags"]["sandbox_tests"] == {"failing": 1, "false_flags": 1, "false_flag_share": 1.0}
    assert result["feedback_false_flags"]["python_syntax"]["false_flags"] == 0
    assert result["feedback_missed_defects"] == {"hollow-code": 1}
    assert "missed defects per rubric class" in capsys.readouterr().out


# -- the field-by-field edit -------------------------------------------------------------------

def test_product_form_is_filled_from_the_record_and_assembled_with_the_input_attributes():
    form = form_from_output(7, "product", json.dumps(HYBRID_RECORD), ATTRIBUTES)
    assert form.by_field and form.title == "<b>Aurora</b> Travel Mug" and len(form.fact_inputs) == 5
    form.title, form.facts = "Aurora Mug", ["Holds 350 ml", "", "Steel"]
    form.attributes = {"capacity": "1 l"}  # what a forged form might claim: the input's attributes win
    record = json.loads(assembled(form, {"attributes": ATTRIBUTES}))
    assert record == {"title": "Aurora Mug", "tagline": HYBRID_RECORD["tagline"], "facts": ["Holds 350 ml", "Steel"],
                      "description": HYBRID_RECORD["description"], "attributes": ATTRIBUTES}


def test_assembling_refuses_an_empty_title_and_keeps_the_text():
    form = form_from_post(7, "product", {"mode": "fields", "title": "  ", "tagline": "t" * 301,
                                         "description": "Kept\r\ntext"}, ["a fact"])
    assert assembled(form, {"attributes": ATTRIBUTES}) is None
    assert form.errors == {"title": "the title is empty", "tagline": "the tagline has 301 characters; at most 300"}
    assert form.description == "Kept\ntext" and form.facts == ["a fact"]
    empty = form_from_post(7, "article", {"mode": "text", "text": " \n"}, [])
    assert assembled(empty, {}) is None and empty.errors == {"text": "the output is empty"}


def test_a_product_that_is_no_record_is_edited_as_text():
    form = form_from_output(7, "product", '{"title": ', ATTRIBUTES)
    assert not form.by_field and form.text == '{"title": ' and form.source_problem.startswith("not JSON")


@pytest.fixture
def site(migrated_pg, tmp_path):
    review = seed_review_data(migrated_pg)
    extra = seed_compare_data(migrated_pg)
    settings = Settings(data_dir=tmp_path / "data", database_url=migrated_pg, validators_disabled=MODEL_FREE)
    app = create_app(settings, AppServices(settings, session_factory(migrated_pg), lambda ids: 1))
    with LiveServer(app) as server:
        client = httpx.Client(base_url=server.url, timeout=60)
        client.post("/admin/login", data={"username": ADMIN, "password": ADMIN_PASSWORD})
        yield client, migrated_pg, review, extra
        client.close()


def csrf(client: httpx.Client, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text[:300]
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def test_edit_route_keeps_the_text_on_a_refused_save_and_reports_validators_on_a_saved_one(site):
    client, url, review, extra = site
    token = csrf(client, f"/admin/review/item/{extra.code_id}/edit")
    broken = "def add(a, b)\n    return a + b  # my <fix>\n"
    r = client.post("/admin/review/save-edit", data={"csrf_token": token, "pk": extra.code_id, "mode": "text",
                                                     "text": broken})
    assert r.status_code == 422
    assert "the edited code does not parse" in r.text
    assert "def add(a, b)\n    return a + b  # my &lt;fix&gt;" in r.text, "the reviewer's text is kept, escaped"
    with session_factory(url)() as s:
        assert s.get(Item, extra.code_id).edited_output is None

    r = client.post("/admin/review/save-edit", data={"csrf_token": token, "pk": extra.product_id, "mode": "fields",
                                                     "title": "", "tagline": "Hot drinks", "fact": ["One", "Two"],
                                                     "description": "My long description stays."})
    assert r.status_code == 422 and "the title is empty" in r.text
    assert "My long description stays." in r.text and 'value="Two"' in r.text

    r = client.post("/admin/review/save-edit", data={
        "csrf_token": token, "pk": extra.product_id, "mode": "fields", "title": "Aurora Travel Mug",
        "tagline": "Hot drinks for the commute", "fact": ["Capacity: 350 ml", "Stainless steel"],
        "description": "A 350 ml stainless steel mug for hot drinks on the way to work. Wash it by hand.",
        "note": "two facts on purpose"})
    assert r.status_code == 200, r.text[:500]
    assert 'id="edit-saved"' in r.text and "you may still approve it" in r.text
    reports = dict(re.findall(r'data-validator="([^"]+)">\s*<strong>[^<]+</strong> (passed|failed)', r.text))
    # The kind's validators ran on the edit (two facts are fewer than the schema's three); the model-backed
    # ones are off here. (Other model-free validators of the kind may run too.)
    assert reports["json_schema"] == "failed" and reports["degeneration[description]"] == "passed", reports
    assert not {"contradiction[description]", "product_attributes"} & set(reports)
    with session_factory(url)() as s:
        item = s.get(Item, extra.product_id)
        assert item.review_status == "edited"
        assert json.loads(item.edited_output)["attributes"] == ATTRIBUTES
        assert s.execute(select(Review).where(Review.item_id == item.id)).scalar_one().note == "two facts on purpose"


def test_edit_and_feedback_posts_need_the_csrf_token(site):
    client, url, review, extra = site
    for path, data in (("/admin/review/save-edit", {"pk": extra.code_id, "mode": "text", "text": "x = 1\n"}),
                       ("/admin/review/feedback", {"pk": extra.code_id, "attempt_id": 1, "label": "false_flag",
                                                   "validator": "sandbox_tests"})):
        r = client.post(path, data={**data, "csrf_token": "forged"})
        assert r.status_code == 403 and "CSRF token" in r.text
    with session_factory(url)() as s:
        assert s.get(Item, extra.code_id).edited_output is None
        assert s.execute(select(Feedback)).first() is None


def test_feedback_route_stores_labels_and_refuses_bad_ones_on_the_page(site):
    client, url, review, extra = site
    token = csrf(client, f"/admin/item/details/{extra.product_id}")
    with session_factory(url)() as s:
        attempts = {a.path: a.id for a in s.execute(select(Attempt).where(Attempt.item_id == extra.product_id)).scalars()}
    r = client.post("/admin/review/feedback", data={"csrf_token": token, "pk": extra.product_id,
                                                    "attempt_id": attempts["ar_fallback"], "label": "missed_defect",
                                                    "defect_class": "hollow-code"})
    assert r.status_code == 303 and r.headers["location"].endswith(f"/admin/item/details/{extra.product_id}#feedback")
    assert "does not apply to a product" in client.get(r.headers["location"]).text
    r = client.post("/admin/review/feedback", data={"csrf_token": token, "pk": extra.product_id,
                                                    "attempt_id": "x1", "label": "false_flag"})
    assert r.status_code == 400 and "attempt_id: expected a whole number" in r.text
    r = client.post("/admin/review/feedback", data={"csrf_token": token, "pk": extra.product_id,
                                                    "attempt_id": attempts["hybrid"], "label": "false_flag",
                                                    "validator": "degeneration[description]"})
    assert r.status_code == 303
    page = client.get(r.headers["location"]).text
    assert "false flag (alice)" in page
    with session_factory(url)() as s:
        rows = s.execute(select(Feedback)).scalars().all()
        assert [(f.label, f.validator, f.labeller_name) for f in rows] == \
            [("false_flag", "degeneration[description]", ADMIN)]


def test_the_edit_page_for_code_and_the_item_page_render(site):
    client, url, review, extra = site
    edit = client.get(f"/admin/review/item/{extra.code_id}/edit")
    assert edit.status_code == 200 and 'id="edit-text"' in edit.text and "def add(a, b)" in edit.text
    product = client.get(f"/admin/review/item/{extra.product_id}/edit").text
    assert 'id="edit-title"' in product and product.count('name="fact"') == 5
    assert "&lt;b&gt;Aurora&lt;/b&gt; Travel Mug" not in product, "the form shows the final (fallback) record"
    assert 'value="Aurora Travel Mug"' in product and 'id="count-title">17 / 200<' in product
    page = client.get(f"/admin/item/details/{extra.product_id}").text
    assert "&lt;b&gt;Aurora&lt;/b&gt; Travel Mug" in page and "<b>Aurora</b>" not in page
    assert page.count('id="final-output"') == 1 and 'id="job-input"' in page
    assert re.findall(r'id="use-([a-z_]+)"', page) == ["hybrid"], "only the attempt that is not final offers itself"
