"""Plans never lose what the user wrote: on every planned path (hybrid with its fallback, and ar),
the final output holds the user's article headings, every product attribute, and the code prompt
verbatim. The tiny random model's plans and text are noise, so this is what survives the worst
planner: re-plans, repairs from the input and the fallback included."""

from __future__ import annotations

import json

import pytest

from pipeline.jobs import ItemJob
from pipeline.orchestrator import _generate
from pipeline.runtime import Runtime
from service.spec import parse_jsonl

HEADINGS = ["Where tea comes from", "Green, black & oolong", "Brewing: time and heat"]
ATTRIBUTES = {"capacity": "350 ml", "material": "stainless steel", "colour": "midnight blue", "lid": "bamboo",
              "weight": 280, "dishwasher safe": False, "warranty": "2 years"}  # more than a record's 5 facts
CODE_PROMPT = ('import math\nfrom typing import List\n\n\ndef norms(points: List[tuple]) -> List[float]:\n'
               '    """Return the distance of each (x, y) point from the origin, in order.\n\n'
               '    >>> norms([(3, 4), (0, 0)])\n    [5.0, 0.0]\n    """')
TASK_TEXT = "Write a function to find the shared elements from the given two lists.\nKeep their first order."


def jobs(mode: str) -> list[ItemJob]:
    lines = [{"kind": "article", "input": {"topic": "tea", "sections": HEADINGS}},
             {"kind": "product", "input": {"name": "Aurora Mug", "attributes": ATTRIBUTES}},
             {"kind": "code", "input": {"prompt": CODE_PROMPT}},
             {"kind": "code", "input": {"prompt": TASK_TEXT, "tests": ["assert shared([1, 2], [2]) == [2]"]}}]
    parsed = parse_jsonl("\n".join(json.dumps(line) for line in lines))
    return [ItemJob(i + 1, 1, j.kind, j.input, {}, mode) for i, j in enumerate(parsed.jobs)]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, model_cache_dir):
    from pipeline.settings import Settings

    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), cache_dir=model_cache_dir, model="tiny-llama",
                        max_new_tokens=12, nli_model="none", retry_samples="")
    runtime = Runtime(settings)
    return {mode: _generate(jobs(mode), runtime) for mode in ("hybrid", "ar")}


@pytest.mark.parametrize("mode", ["hybrid", "ar"])
def test_article_headings_given_by_the_user_reach_the_output(outcomes, mode):
    output = outcomes[mode][1].output
    assert [line[3:] for line in output.splitlines() if line.startswith("## ")] == HEADINGS


@pytest.mark.parametrize("mode", ["hybrid", "ar"])
def test_every_product_attribute_reaches_the_output(outcomes, mode):
    record = json.loads(outcomes[mode][2].output)
    assert record["attributes"] == ATTRIBUTES  # every one, as given (the facts hold at most five)


@pytest.mark.parametrize("mode", ["hybrid", "ar"])
def test_the_code_prompt_reaches_the_output_verbatim(outcomes, mode):
    assert CODE_PROMPT in outcomes[mode][3].output  # imports, signature, the whole docstring with its example
    task = outcomes[mode][4].output
    # the task text is the docstring, each of its lines kept
    assert ('    """Write a function to find the shared elements from the given two lists.\n'
            '    Keep their first order.') in task
