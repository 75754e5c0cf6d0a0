"""The edit form's content, field by field: read from an output, read back from a POST, and assembled
into the deliverable.

A product is edited as its written fields (title, tagline, facts, description); the record is put
together from them with the job input's attributes, unchanged (`record_json`), so a reviewer cannot
break the JSON or lose an attribute. Articles and code are edited as text. Whatever the reviewer
typed stays in the form when a save is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from hybridgen.admin.render_output import parse_record, shown_value
from pipeline.kinds.product import RECORD_SCHEMA, record_json

_PROPS = RECORD_SCHEMA["properties"]
LIMITS = {"title": _PROPS["title"]["maxLength"], "tagline": _PROPS["tagline"]["maxLength"]}
FACTS_MIN, FACTS_MAX = _PROPS["facts"]["minItems"], _PROPS["facts"]["maxItems"]
DESCRIPTION_ADVICE = 1200
"""Not a limit: the description's counter turns amber past it (a paragraph, not a page)."""


@dataclass
class EditForm:
    item_id: int
    kind: str
    text: str = ""
    """Articles and code, and a product whose stored output is no record."""
    title: str = ""
    tagline: str = ""
    facts: list[str] = field(default_factory=list)
    description: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    errors: dict[str, str] = field(default_factory=dict)
    """Field name ("title", "facts", "text", ...) -> what is wrong with it."""
    source_problem: str | None = None
    """Why the stored product output could not be split into fields (it is shown as text)."""

    @property
    def by_field(self) -> bool:
        return self.kind == "product" and self.source_problem is None

    @property
    def fact_inputs(self) -> list[str]:
        """The facts, padded with empty inputs up to the most a record may hold."""
        return self.facts + [""] * max(0, FACTS_MAX - len(self.facts))

    @property
    def shown_attributes(self) -> list[tuple[str, str]]:
        return [(k, shown_value(v)) for k, v in self.attributes.items()]

    @property
    def limits(self) -> dict[str, int]:
        return {**LIMITS, "description": DESCRIPTION_ADVICE}


def form_from_output(item_id: int, kind: str, output: str | None,
                     attributes: Mapping[str, Any] | None = None) -> EditForm:
    """The form pre-filled with the item's current output (the edit, if there is one)."""
    output = output or ""
    if kind != "product":
        return EditForm(item_id, kind, text=output)
    record, problem = parse_record(output)
    if record is None:
        return EditForm(item_id, kind, text=output, source_problem=problem,
                        attributes=dict(attributes or {}))
    facts = record.get("facts")
    return EditForm(
        item_id, kind,
        title=shown_value(record.get("title") or ""),
        tagline=shown_value(record.get("tagline") or ""),
        facts=[shown_value(f) for f in facts] if isinstance(facts, list) else ([shown_value(facts)] if facts else []),
        description=shown_value(record.get("description") or ""),
        attributes=dict(attributes if attributes is not None else record.get("attributes") or {}),
    )


def form_from_post(item_id: int, kind: str, form: Mapping[str, Any], facts: list[str],
                   attributes: Mapping[str, Any] | None = None) -> EditForm:
    """The reviewer's values as typed (kept as they are, to show them again on an error)."""
    def value(name: str) -> str:
        return str(form.get(name) or "").replace("\r\n", "\n")

    by_field = kind == "product" and value("mode") == "fields"
    return EditForm(item_id, kind, text="" if by_field else value("text"),
                    title=value("title"), tagline=value("tagline"), facts=[f.replace("\r\n", "\n") for f in facts],
                    description=value("description"), attributes=dict(attributes or {}), note=value("note"),
                    source_problem=None if by_field or kind != "product" else "the stored output is no record")


def assembled(form: EditForm, job_input: Mapping[str, Any]) -> str | None:
    """The deliverable the form describes, or None with `form.errors` saying what is missing.

    Only what would make the output unusable is refused here (an empty title, a field over the
    schema's length); everything else is for the kind's validators to report after the save.
    """
    if not form.by_field:
        if not form.text.strip():
            form.errors["text"] = "the output is empty"
            return None
        return form.text
    for name in ("title", "tagline", "description"):
        text = getattr(form, name).strip()
        if not text:
            form.errors[name] = f"the {name} is empty"
        elif name in LIMITS and len(text) > LIMITS[name]:
            form.errors[name] = f"the {name} has {len(text)} characters; at most {LIMITS[name]}"
    facts = [f.strip() for f in form.facts if f.strip()]
    if not facts:
        form.errors["facts"] = f"a record needs facts ({FACTS_MIN} to {FACTS_MAX}); all are empty"
    if form.errors:
        return None
    record = {"title": form.title.strip(), "tagline": form.tagline.strip(), "facts": facts,
              "description": form.description.strip()}
    return record_json(record, {"attributes": job_input.get("attributes", form.attributes)})


def input_attributes(job_input: Mapping[str, Any] | None) -> dict[str, Any]:
    attributes = (job_input or {}).get("attributes")
    return dict(attributes) if isinstance(attributes, dict) else {}
