"""`plain` mode (pipeline/plain.py): one plain prompt per item for the whole deliverable, read from
the reply by the kind, checked by the same validators, retried with the same budget, stored as a
`plain` attempt. The prompts and the reading are tested on hand-made replies; the path on the tiny
model (whose replies are noise)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from pipeline.jobs import ItemJob
from pipeline.kinds import get_kind
from pipeline.orchestrator import _generate, run_chunk
from pipeline.runtime import Runtime
from pipeline.settings import Settings, SettingsError
from service.spec import parse_jsonl
from service.storage.db import session_factory
from service.storage.models import Attempt, Batch, Item
from service.submission import submit_batch
from validators.base import ValidationContext
from tests.test_cli import env, invoke  # noqa: F401 - env: the CLI's tiny-model environment (a fixture)
from validators.markdown_structure import MarkdownStructure

ARTICLE = {"topic": "tea", "audience": "beginners", "sections": ["Where tea comes from", "How to brew it"]}
PRODUCT = {"name": "Aurora Mug", "attributes": {"capacity": "350 ml", "material": "steel", "dishwasher safe": False}}
CODE = {"prompt": 'def add(a: int, b: int) -> int:\n    """Return a + b.\n    >>> add(1, 2)\n    3\n    """',
        "tests": ["assert add(2, 2) == 4"]}
JOBS = [{"kind": "article", "input": ARTICLE}, {"kind": "product", "input": PRODUCT}, {"kind": "code", "input": CODE}]


def test_plain_prompts_ask_for_the_whole_deliverable_with_everything_the_user_gave():
    article = get_kind("article").plain_span({**ARTICLE}, 320).prompt.user
    assert "Markdown" in article and "Where tea comes from; How to brew it" in article and '"## "' in article
    product = get_kind("product").plain_span(PRODUCT, 320).prompt.user
    assert "JSON" in product and all(k in product for k in ("capacity: 350 ml", "material: steel",
                                                            "dishwasher safe: no"))
    code = get_kind("code").plain_span(CODE, 320)
    assert code.prompt.user.startswith("Complete this Python function. Reply with the whole function in one ```python")
    assert CODE["prompt"] in code.prompt.user and "assert add(2, 2) == 4" in code.prompt.user
    assert code.prompt.assistant_prefix == ""  # a plain chat prompt: nothing forced into the reply
    # the same budget as the planned path, each part capped by HYBRIDGEN_MAX_NEW_TOKENS
    sections = get_kind("article").plain_span({**ARTICLE, "sections": 4}, 320)
    assert sections.max_new_tokens == 40 + 4 * 160 and get_kind("article").plain_span(ARTICLE, 12).max_new_tokens == 36


def test_code_is_read_from_the_block_that_defines_the_function():
    kind = get_kind("code")
    reply = ("Here is a helper first:\n```python\ndef helper():\n    pass\n```\nAnd the function:\n"
             "```Python\ndef add(a: int, b: int) -> int:\n    return a + b\n```\nIt adds.")
    read = kind.parse_plain(CODE, reply)
    assert read.readable and read.output == "def add(a: int, b: int) -> int:\n    return a + b\n"
    for bare in ("def add(a, b):\n    return a + b\n<|im_end|>", "Here:\ndef add(a, b):\n    return a + b\n```\nDone.",
                 "import math\n\ndef add(a, b):\n    return a + b\n```"):  # the default model's: a closing fence only
        read = kind.parse_plain(CODE, bare)
        assert read.readable and read.note == "the function from the reply's code (it has no ```python block)"
        assert read.output.rstrip().endswith("def add(a, b):\n    return a + b")
    prose = kind.parse_plain(CODE, "Sure! Just add the two numbers together.\ndef add(a, b) returns a + b")
    assert not prose.readable and prose.note == "no ```python block in the reply, and no Python code in it"
    other = kind.parse_plain(CODE, "```python\ndef plus(a, b):\n    return a + b\n```")
    assert not other.readable and other.note == "the code in the reply's ```python block does not define add()"


def test_code_reply_is_placed_in_the_users_file():
    kind = get_kind("code")
    job = {"prompt": "import math\n\n\ndef double(x):\n    return 2 * x\n\n\ndef quad(x: float) -> float:\n"
                     '    """Four times x, via double."""'}
    read = kind.parse_plain(job, "```python\ndef quad(x: float) -> float:\n    return double(double(x))\n```")
    namespace: dict = {}
    exec(compile(read.output, "<plain>", "exec"), namespace)  # the user's import and helper are there
    assert namespace["quad"](1.5) == 6.0 and read.output.startswith("import math\n\ndef double(x):")


def test_product_record_is_the_first_json_object_with_the_users_attributes():
    kind = get_kind("product")
    reply = ('Sure, here it is:\n```json\n{"title": "Aurora Mug", "tagline": "Warm drinks", "facts": '
             '["Holds 350 ml", "Steel", "Hand wash"], "description": "A steel mug.", "attributes": {"x": 1}}\n```')
    read = kind.parse_plain(PRODUCT, reply)
    record = json.loads(read.output)
    assert read.readable and record["facts"] == ["Holds 350 ml", "Steel", "Hand wash"]
    assert record["attributes"] == PRODUCT["attributes"]  # the user's, as given, in every mode
    broken = kind.parse_plain(PRODUCT, '{"title": "Aurora Mug", "facts": [')
    assert not broken.readable and broken.note == "no JSON object in the reply"


def test_article_is_the_replys_markdown_as_written():
    kind = get_kind("article")
    text = "# Tea\n\n## Where tea comes from\n\nChina, long ago.\n"
    assert kind.parse_plain(ARTICLE, f"```markdown\n{text}```<|im_end|>").output == text
    assert kind.parse_plain(ARTICLE, text).output == text
    assert not kind.parse_plain(ARTICLE, "  <|im_end|>").readable


@pytest.mark.parametrize("text, passed, message", [
    ("# Tea\n\n## A\n\nOne two three four five.\n\n## B\n\nSix seven eight nine ten.\n", True, "2 sections, as asked"),
    ("# Tea\n\n## A\n\nOne two three four five.\n\n### A.1\n\nmore\n\n## B\n\nSix seven eight nine ten.\n", True,
     "2 sections"),
    ("# Tea\n\n## A\n\nOne two three four five.\n", False, "1 sections, 2 asked for"),
    ("# Tea\n\n## A\n\nOne two three four five.\n\n## B\n\nShort.\n", False, "section 'B' has an empty or too short"),
    ("Tea is nice.", False, "no Markdown headings at all"),
])
def test_without_a_plan_the_article_has_the_number_of_sections_asked_for(text, passed, message):
    report = MarkdownStructure().check(text, ValidationContext(kind="article", input={"sections": 2}))
    assert report.passed == passed and message in report.message


def test_plain_is_a_mode_everywhere_a_mode_is_chosen():
    assert Settings.from_env({"HYBRIDGEN_DEFAULT_MODE": "plain"}).default_mode == "plain"
    with pytest.raises(SettingsError, match="expected one of hybrid, ar, plain"):
        Settings.from_env({"HYBRIDGEN_DEFAULT_MODE": "plane"})
    parsed = parse_jsonl(json.dumps({**JOBS[2], "params": {"mode": "plain"}}))
    assert parsed.jobs[0].params == {"mode": "plain"}


@pytest.fixture
def runtime(tiny_settings):
    return Runtime(tiny_settings.replace(max_new_tokens=16, retry_samples="code=3,product=2"))


def test_plain_path_is_one_attempt_per_item_with_the_same_validators_and_retries(runtime):
    jobs = [ItemJob(i + 1, 1, j["kind"], parse_jsonl(json.dumps(j)).jobs[0].input, {}, "plain")
            for i, j in enumerate(JOBS)]
    out = _generate(jobs, runtime)
    validators = {"article": {"markdown_structure", "degeneration", "contradiction"},
                  "product": {"json_schema", "degeneration[description]", "product_attributes", "contradiction"},
                  "code": {"python_syntax", "sandbox_tests"}}
    for job in jobs:
        [attempt] = out[job.item_id].attempts  # no plan, no fallback
        assert attempt.path == "plain" and attempt.plan is None and attempt.models["ar"] == "tiny-llama"
        assert "refiner" not in attempt.models and "planner" not in attempt.models
        names = [r["validator"] for r in attempt.reports]
        assert names[0] == "plain_reply" and validators[job.kind] <= set(names)
        assert attempt.timings["plain_tokens"] > 0 and attempt.generated_tokens >= attempt.timings["plain_tokens"]
        assert out[job.item_id].status == ("done" if attempt.passed else "flagged")
    # the tiny model's noise fails; products and functions then get their sampled replies, articles none
    assert out[2].attempts[0].timings["retry_samples"] == 2 and out[3].attempts[0].timings["retry_samples"] == 3
    assert "retry_samples" not in out[1].attempts[0].timings
    again = _generate(jobs, runtime)
    assert [again[j.item_id].output for j in jobs] == [out[j.item_id].output for j in jobs]  # deterministic


def test_plain_batches_are_stored_with_plain_attempts(runtime, db_url):
    runtime.settings = runtime.settings.replace(database_url=db_url, retry_samples="")
    sessions = session_factory(db_url)
    parsed = parse_jsonl("\n".join(json.dumps(j) for j in JOBS))
    ids = submit_batch(sessions, parsed, name="p", mode="plain").new_item_ids
    run_chunk(ids, sessions=sessions, runtime=runtime)
    with sessions() as s:
        assert s.execute(select(Batch.mode)).scalar_one() == "plain"
        for item in s.execute(select(Item).order_by(Item.id)).scalars():
            [attempt] = s.execute(select(Attempt).where(Attempt.item_id == item.id)).scalars().all()
            assert attempt.path == "plain" and item.final_path == "plain" and item.final_attempt_id == attempt.id
            assert item.output == attempt.output and attempt.forward_passes >= 1


def test_run_and_submit_take_plain_from_the_flag_or_the_default_mode(tmp_path, env, monkeypatch):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n".join(json.dumps(j) for j in JOBS) + "\n")
    assert invoke("run", "--mode", "plain", "--quiet", str(jobs)).exit_code == 0
    url = f"sqlite:///{env['HYBRIDGEN_DATA_DIR']}/hybridgen.sqlite"
    with session_factory(url)() as s:
        assert s.execute(select(Batch.mode)).scalars().all() == ["plain"]
        assert set(s.execute(select(Attempt.path)).scalars()) == {"plain"}
    monkeypatch.setenv("HYBRIDGEN_DEFAULT_MODE", "plain")
    monkeypatch.setenv("HYBRIDGEN_BROKER_URL", f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}")
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps(JOBS[0]) + "\n")
    assert invoke("submit", str(other)).exit_code == 0
    with session_factory(url)() as s:
        assert s.execute(select(Batch.mode).order_by(Batch.id)).scalars().all() == ["plain", "plain"]


def test_a_jobs_params_mode_plain_overrides_its_batch(runtime, db_url):
    runtime.settings = runtime.settings.replace(database_url=db_url, retry_samples="")
    sessions = session_factory(db_url)
    lines = [{**JOBS[2], "params": {"mode": "plain"}}, JOBS[2]]
    ids = submit_batch(sessions, parse_jsonl("\n".join(json.dumps(j) for j in lines)), name="m", mode="ar").new_item_ids
    run_chunk(ids, sessions=sessions, runtime=runtime)
    with sessions() as s:
        assert s.execute(select(Item.final_path).order_by(Item.line_no)).scalars().all() == ["plain", "ar"]
