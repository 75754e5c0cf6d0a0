"""An output as a reviewer reads it, as safe HTML: Markdown rendered, a product record as a card, code
highlighted, with the failing reports' evidence marked where it can be found.

Outputs are untrusted text (a model wrote them, and a prompt can steer the model):
- Markdown is rendered by markdown-it-py with raw HTML off, so `<script>` comes out as text; links
  keep only http(s) and mailto targets (no `javascript:`, no `data:`), and images are not rendered
  (the Content-Security-Policy would block a remote one anyway, and a page should not fetch what an
  output names);
- product fields and code go through `markupsafe.escape` / Pygments, which escape everything.
When a text cannot be rendered as its kind (a product that is not JSON), it is shown as escaped text
with the reason, never dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable

from markdown_it import MarkdownIt
from markupsafe import Markup, escape

from hybridgen.admin.highlight import evidence_spans, highlighted

LINK_SCHEMES = ("http://", "https://", "mailto:")
PRODUCT_FIELDS = ("title", "tagline", "facts", "description", "attributes")


@dataclass(frozen=True)
class Rendered:
    html: Markup
    problem: str | None = None
    """Why the output is shown as plain text instead (e.g. a product that is not JSON)."""


def render_output(kind: str, text: str | None, reports: Iterable[dict[str, Any]] = ()) -> Rendered:
    reports = list(reports)
    if text is None or not text.strip():
        return Rendered(Markup('<p class="text-secondary">no output</p>'))
    if kind == "article":
        return Rendered(render_markdown(text, reports))
    if kind == "product":
        record, problem = parse_record(text)
        if record is None:
            return Rendered(Markup('<pre class="output">{}</pre>').format(highlighted(text, reports)), problem)
        return Rendered(product_card(record, reports))
    if kind == "code":
        return Rendered(render_code(text, reports))
    return Rendered(Markup('<pre class="output">{}</pre>').format(highlighted(text, reports)))


# -- Markdown ------------------------------------------------------------------------------------

def render_markdown(text: str, reports: Iterable[dict[str, Any]] = ()) -> Markup:
    """Markdown as sanitised HTML; failing reports' evidence is marked inside the text it falls in."""
    html = _markdown().render(text, {"reports": list(reports)})
    return Markup('<div class="rendered-md">{}</div>').format(Markup(html))


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False,
                                   "highlight": _highlight_fence})
    md.enable("table").enable("strikethrough")
    md.disable("image")
    md.validateLink = _allowed_link  # a link to anything else stays as its text
    md.add_render_rule("link_open", _link_open)
    md.add_render_rule("text", _text_with_evidence)
    return md


def _allowed_link(url: str) -> bool:
    return url.strip().lower().startswith(LINK_SCHEMES)


def _link_open(self, tokens, idx, options, env) -> str:
    tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
    return self.renderToken(tokens, idx, options, env)


def _text_with_evidence(self, tokens, idx, options, env) -> str:
    # The default rule escapes the text; this one escapes it too (highlighted() escapes every piece).
    return str(highlighted(tokens[idx].content, env.get("reports", [])))


def _highlight_fence(code: str, lang: str, attrs: str) -> str:
    """A fenced block in an article, coloured when its language is known (returned whole, as <pre>)."""
    lexer = _lexer(lang.strip().lower())
    if lexer is None:
        return ""  # markdown-it escapes it in a plain <pre><code>
    return str(Markup('<pre class="highlight"><code>{}</code></pre>').format(_pygmentize(code, lexer)))


# -- product -------------------------------------------------------------------------------------

def parse_record(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """The product record, or (None, why it is not one)."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        return None, f"not JSON: {e.msg} at line {e.lineno} column {e.colno}"
    if not isinstance(record, dict):
        return None, f"a product record must be a JSON object, not {type(record).__name__}"
    return record, None


def shown_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def product_card(record: dict[str, Any], reports: Iterable[dict[str, Any]] = ()) -> Markup:
    reports = list(reports)

    def about(name: str) -> list[dict[str, Any]]:
        """The reports whose evidence may lie in field `name`: those run on that field (their offsets
        point into it, validators.json_field), and those on the whole record (found by their words)."""
        return [r for r in reports if (r.get("details") or {}).get("field") in (None, name)]

    def field(name: str) -> Markup:
        value = record.get(name)
        if value is None:
            return Markup('<span class="missing">missing</span>')
        return highlighted(shown_value(value), about(name))

    facts = record.get("facts")
    if isinstance(facts, list):
        facts_html = Markup("").join(Markup("<li>{}</li>").format(highlighted(shown_value(f), about("facts")))
                                     for f in facts)
        facts_html = Markup('<ul class="product-facts">{}</ul>').format(facts_html)
    else:
        facts_html = Markup('<p class="product-facts">{}</p>').format(field("facts"))
    attributes = record.get("attributes")
    rows = attributes.items() if isinstance(attributes, dict) else []
    attrs_html = Markup("").join(Markup("<dt>{}</dt><dd>{}</dd>").format(k, shown_value(v)) for k, v in rows)
    extra = [k for k in record if k not in PRODUCT_FIELDS]
    extra_html = Markup("").join(
        Markup('<div class="product-extra"><span class="badge bg-yellow-lt">extra field</span> {}: {}</div>')
        .format(k, shown_value(record[k])) for k in extra)
    return Markup(
        '<div class="product-card">'
        '<div class="product-title">{}</div>'
        '<div class="product-tagline">{}</div>'
        '{}'
        '<p class="product-description">{}</p>'
        '<dl class="product-attributes">{}</dl>{}'
        '</div>'
    ).format(field("title"), field("tagline"), facts_html, field("description"),
             attrs_html or Markup('<dd class="missing">no attributes</dd>'), extra_html)


# -- code ----------------------------------------------------------------------------------------

def render_code(text: str, reports: Iterable[dict[str, Any]] = (), lang: str = "python") -> Markup:
    """Code coloured by Pygments; the lines holding failing reports' evidence get a highlight band."""
    lines = {text.count("\n", 0, start) + 1 for start, _, _ in evidence_spans(text, reports)}
    lexer = _lexer(lang)
    body = _pygmentize(text, lexer, hl_lines=sorted(lines)) if lexer else escape(text)
    return Markup('<pre class="highlight code-output">{}</pre>').format(body)


@lru_cache(maxsize=32)
def _lexer(lang: str):
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    if not lang:
        return None
    try:
        return get_lexer_by_name(lang, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


def _pygmentize(code: str, lexer, hl_lines: list[int] = ()) -> Markup:
    """Pygments' spans only (CSS classes from hybridgen/static/pygments.css, no inline style: the
    Content-Security-Policy forbids it). Pygments escapes the code itself."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter

    return Markup(highlight(code, lexer, HtmlFormatter(nowrap=True, hl_lines=list(hl_lines))))


def pygments_css(style: str = "default") -> str:
    """The rules hybridgen/static/pygments.css holds (tests check the file is up to date)."""
    from pygments.formatters import HtmlFormatter

    rules = HtmlFormatter(style=style).get_style_defs(".highlight").splitlines()
    return "\n".join(r for r in rules if r.startswith(".highlight")) + "\n"


# -- text for the diff ---------------------------------------------------------------------------

def readable_text(kind: str, text: str | None) -> str:
    """What a reader compares: for a product record its written fields, one per paragraph (the
    attributes are the input's, the same in every version); otherwise the text itself."""
    if not text:
        return ""
    if kind == "product":
        record, _ = parse_record(text)
        if record is not None:
            facts = record.get("facts")
            facts_text = "\n".join(f"- {shown_value(f)}" for f in facts) if isinstance(facts, list) \
                else shown_value(facts or "")
            parts = [shown_value(record.get(k) or "") for k in ("title", "tagline")]
            parts += [facts_text, shown_value(record.get("description") or "")]
            return "\n\n".join(p for p in parts if p)
    return text
