"""`product`: JSON record (title, tagline, 3-5 facts drawn from the attributes) -> description -> JSON.

The record also carries the user's attributes as they were given (`attributes`), in every mode: the
facts are at most five, and no attribute may be lost on the way to the output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pipeline.kinds.base import Fallback, PlainReply, PlanRequest, Prompt, Span
from pipeline.text import clean_paragraphs, first_json_object, strip_chat_artifacts
from validators.text import content_words, words

RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "tagline": {"type": "string", "minLength": 1, "maxLength": 300},
        "facts": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 3, "maxItems": 5},
        "description": {"type": "string", "minLength": 1},
        "attributes": {"type": "object", "minProperties": 1},
    },
    "required": ["title", "tagline", "facts", "description", "attributes"],
    "additionalProperties": False,
}
# Strings in guidance's fallback record: printable ASCII without quotes or backslashes, so the JSON is
# valid by construction. (ASCII also keeps guidance from stopping inside a multi-byte character,
# which its decoder rejects.)
SAFE_TEXT = r"[ !#-\[\]-~]"
FALLBACK_DESCRIPTION_TEMPERATURE = 0.5


def attribute_text(job_input: dict[str, Any]) -> str:
    """Attributes as the prompts show them. Yes/no values read "yes"/"no": shown as Python's
    "False", the default model copied "Dishwasher safe: False" into facts and then wrote "The mug is
    dishwasher safe"."""
    return "; ".join(f"{k}: {shown_value(v)}" for k, v in job_input["attributes"].items())


def shown_value(value: Any) -> str:
    return ("yes" if value else "no") if isinstance(value, bool) else str(value)


def fact_bounds(job_input: dict[str, Any]) -> tuple[int, int]:
    n = len(job_input["attributes"])
    return min(3, n), max(3, min(5, n))


def attribute_facts(job_input: dict[str, Any]) -> list[str]:
    """Bullet facts stated from the attributes themselves ("Capacity: 350 ml", "Not dishwasher safe")."""
    _, hi = fact_bounds(job_input)
    facts = [f"{k[:1].upper()}{k[1:]}: {v}" if not isinstance(v, bool) else
             (f"{k[:1].upper()}{k[1:]}" if v else f"Not {k}") for k, v in job_input["attributes"].items()]
    return padded_facts(facts[:hi], job_input)


def padded_facts(facts: list[str], job_input: dict[str, Any]) -> list[str]:
    """A record holds at least 3 facts; a product with fewer attributes repeats its name to fill them
    (on both paths: the plan asks for one fact per attribute, and the fallback states them)."""
    return facts + [job_input["name"]] * max(0, RECORD_SCHEMA["properties"]["facts"]["minItems"] - len(facts))


def record_json(record: dict[str, Any], job_input: dict[str, Any]) -> str:
    """The deliverable: the written record with the user's attributes, as given, after it."""
    return json.dumps({**record, "attributes": job_input["attributes"]}, ensure_ascii=False, indent=2)


@dataclass(frozen=True)
class Product:
    name: str = "product"
    schema: dict = field(default_factory=lambda: RECORD_SCHEMA)
    span_tokens: int = 150

    def plan_request(self, job_input: dict[str, Any]) -> PlanRequest:
        lo, hi = fact_bounds(job_input)
        schema = {"type": "object", "properties": {
            "title": {"type": "string", "minLength": 3, "maxLength": 60},
            "tagline": {"type": "string", "minLength": 5, "maxLength": 80},
            "facts": {"type": "array", "minItems": lo, "maxItems": hi,
                      "items": {"type": "string", "minLength": 3, "maxLength": 60}}},
            "required": ["title", "tagline", "facts"], "additionalProperties": False}
        user = (f"Write a product record for \"{job_input['name']}\" as JSON with a title, a short tagline and "
                f"{lo} to {hi} short facts. Every fact must restate one of these attributes: "
                f"{attribute_text(job_input)}.")
        return PlanRequest(Prompt(user), schema, 60 + 25 * hi)

    def normalise_plan(self, job_input: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
        return raw

    def repair_plan(self, job_input: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
        """After re-planning failed: keep the model's title and tagline, and state the facts from the
        attributes directly (they are the one part of the plan that must be exact)."""
        return {"title": plan.get("title") or job_input["name"], "tagline": plan.get("tagline") or job_input["name"],
                "facts": attribute_facts(job_input)[:max(1, len(job_input["attributes"]))]}  # no padding: see check_plan

    def check_plan(self, job_input: dict[str, Any], plan: dict[str, Any]) -> list[str]:
        problems = []
        facts = plan.get("facts", [])
        lo, hi = fact_bounds(job_input)
        if not lo <= len(facts) <= hi:
            problems.append(f"{len(facts)} facts, expected {lo} to {hi}")
        vocab = [set(words(f"{k} {v}")) for k, v in job_input["attributes"].items()]
        seen: set[str] = set()
        for fact in facts:
            fw = set(words(fact))
            if not any((fw & v) - {"the", "a", "and", "of"} for v in vocab):
                problems.append(f"fact {fact!r} is not drawn from the attributes")
            key = " ".join(sorted(content_words(fact)))
            if key in seen:
                problems.append(f"duplicate fact {fact!r}")
            seen.add(key)
        if not plan.get("title", "").strip():
            problems.append("empty title")
        return problems

    def spans(self, job_input: dict[str, Any], plan: dict[str, Any]) -> list[Span]:
        return [Span(
            name="description",
            prompt=Prompt(f"Write a product description for the {job_input['name']}. Facts: {attribute_text(job_input)}. "
                          "Use only these facts. Write one paragraph."),
            max_new_tokens=self.span_tokens,
            stop=("<|im_start|>", "\n\n\n"),
            finish_sentences=True,
        )]

    def assemble(self, job_input: dict[str, Any], plan: dict[str, Any], texts: list[str]) -> str:
        return record_json({"title": plan["title"].strip(), "tagline": plan["tagline"].strip(),
                            "facts": padded_facts([f.strip() for f in plan["facts"]], job_input),
                            "description": clean_paragraphs(texts[0])}, job_input)

    def fallback(self, job_input: dict[str, Any], plan: dict[str, Any]) -> Fallback:
        prompt = Prompt(f"Write a product record for \"{job_input['name']}\" as JSON. Use only these attributes: "
                        f"{attribute_text(job_input)}.")

        def text(name: str, lo_len: int, hi_len: int, tokens: int) -> tuple[str, dict]:
            return ("gen", {"name": name, "regex": f"{SAFE_TEXT}{{{lo_len},{hi_len}}}", "max_tokens": tokens})

        template: list[tuple[str, Any]] = [("text", '{"title": "'), text("title", 3, 60, 20),
                                           ("text", '", "tagline": "'), text("tagline", 5, 80, 25),
                                           ("text", '", "facts": ["')]
        # Facts are the attributes stated as they are (written into the template, not generated):
        # generated ones were the default model's inventions ("a product of the 2022 World Cup").
        template.append(("text", '", "'.join(json.dumps(f, ensure_ascii=False)[1:-1] for f in attribute_facts(job_input))))
        # The description must be 150+ characters and end a sentence (with a bare minimum of 20 the
        # default model closed the string after 11-12 words, mid-word), and it is sampled: greedy,
        # the model repeated one sentence to the token limit.
        description = ("gen", {"name": "description", "regex": f"{SAFE_TEXT}{{150,450}}[.!?]", "max_tokens": 140,
                               "temperature": FALLBACK_DESCRIPTION_TEMPERATURE})
        template += [("text", '"], "description": "'), description, ("text", '"}')]
        return Fallback("guidance", prompt, template)

    def finish_fallback(self, values: dict[str, str], job_input: dict[str, Any]) -> str:
        return record_json({"title": values["title"].strip(), "tagline": values["tagline"].strip(),
                            "facts": attribute_facts(job_input), "description": values["description"].strip()},
                           job_input)

    def plain_span(self, job_input: dict[str, Any], cap: int) -> Span:
        """`plain` mode: the whole record in one reply, asked for as a user would. Its budget is the
        planned path's (the record's plan, then the description), each part capped by HYBRIDGEN_MAX_NEW_TOKENS."""
        lo, hi = fact_bounds(job_input)
        fewest = max(lo, RECORD_SCHEMA["properties"]["facts"]["minItems"])
        count = str(hi) if fewest == hi else f"{fewest} to {hi}"
        user = (f"Write a product record for \"{job_input['name']}\" as a JSON object with the keys \"title\" (a short "
                f"product title), \"tagline\" (one short line), \"facts\" (a list of {count} short facts, each "
                "restating one attribute) and \"description\" (one paragraph). Use only these attributes: "
                f"{attribute_text(job_input)}. Reply with the JSON object only.")
        return Span("reply", Prompt(user), min(60 + 25 * hi, cap) + min(self.span_tokens, cap), stop=("<|im_start|>",))

    def parse_plain(self, job_input: dict[str, Any], reply: str) -> PlainReply:
        """The record is the first JSON object in the reply, with the user's attributes after it
        (record_json), as in every mode."""
        text = strip_chat_artifacts(reply)
        record = first_json_object(text)
        if record is None:
            return PlainReply(text, False, "no JSON object in the reply")
        return PlainReply(record_json(record, job_input), True, "the JSON object in the reply")


PRODUCT = Product()
