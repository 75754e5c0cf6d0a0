"""Refiner quality on held-out prompts: generative perplexity, validator pass rate, the τ sweep.

Plain functions, called by `benchmarks/refiner.py` (which prints the tables and the JSON line).

Prompts. The held-out split of `generators/training` exactly as the shipped adapter's training run
drew it (`data.prepare` with the CUDA profile: 64 prompts, any prompt equal to a training prompt
dropped), then the first `per_kind` of each kind: article sections, product descriptions, MBPP code
tasks 601-640 (never trained on).

Decoding. AR greedy (`generators.decoding.ar.generate_ar` on the base model) and the refiner (cached
decoder, threshold strategy) decode the same chat prompts, both stopping at EOS, with the same
per-kind cap: the pipeline's span budget for that kind (`pipeline/kinds/*.py: span_tokens`:
article 140, product 150, code 180 new tokens), or a smaller cap for --quick. The refiner runs at
batch 1: its rows advance block by block in lockstep, so in a batch every row is charged the
slowest row's forwards and tokens per forward collapses to about 1; batch 1 measures what the
decoding algorithm itself commits per forward (the number the issue's target is about).

Generative perplexity. exp(total NLL / total tokens) of the generated tokens (EOS excluded, as
`RowResult.token_ids` excludes it) given the chat prompt, under the *base* AR model without the
adapter (`load_refiner` packs copies of the weights with the LoRA factors beside them, so `lm.model`
is still the base; the caller asserts it has no LoRA modules). Token-weighted over all prompts. Note AR greedy picks the
judge's argmax at every step, so its perplexity is close to the lowest any decoder can reach:
the ratio measures how far the refiner strays from the planner, not absolute fluency.

Validator pass rate: share of outputs that pass *every* check of their kind. The checks are those
the pipeline runs that make sense on one raw span (NLI off: rules only, no contradiction model):
- article: span cleaned as the article kind assembles it (`clean_paragraphs`, repeated heading
  dropped) -> `Degeneration(min_words=60)` (the article kind's minimum) and `Contradictions`
  (rules only). `markdown_structure` is skipped: a single section has no headings by design;
- product: span cleaned the same way -> `Degeneration(min_words=15)`, `Contradictions` (rules
  only) and `ProductAttributes` (rules only) against the facts given in the prompt.
  `json_schema` is skipped: the JSON record is assembled by the pipeline, not written by the model;
- code: the first fenced block of the reply (else the whole reply; `pipeline.kinds.code.
  extract_code`) with the stdlib imports it uses (`with_imports`) -> `PythonSyntax` and
  `SandboxTests` with the two MBPP asserts shown in the prompt.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

KINDS = ("article", "product", "code")
DEFAULT_MBPP = Path(__file__).resolve().parents[2] / "shared" / "data" / "mbpp" / "mbpp.jsonl"


# -- prompts ------------------------------------------------------------------------------------
def heldout_prompts(per_kind: int, mbpp_path: Path | None = DEFAULT_MBPP) -> list:
    """First `per_kind` held-out ChatPrompts of each kind, in KINDS order (reproduces data.prepare)."""
    from generators.training.data import DataConfig
    from generators.training.prompts import build_prompts
    from generators.training.run import PROFILES

    if mbpp_path is not None and not Path(mbpp_path).exists():
        # without it the code prompts drop out and the split shifts: the numbers would not compare
        raise FileNotFoundError(f"MBPP tasks not found at {mbpp_path}: the held-out code prompts need "
                                "../shared/data/mbpp/mbpp.jsonl beside the checkout (mbpp_path=None: no code prompts)")
    mbpp = mbpp_path
    profile, seed = PROFILES["cuda"], DataConfig.seed  # the profile the shipped adapter was trained with
    seen = {p.user for p in build_prompts(profile["train_prompts"], split="train", mbpp_path=mbpp, seed=seed)}
    n = profile["heldout_prompts"]
    held = [p for p in build_prompts(n + 16, split="heldout", mbpp_path=mbpp, seed=seed) if p.user not in seen][:n]
    return [p for kind in KINDS for p in [q for q in held if q.kind == kind][:per_kind]]


def span_caps(kinds: Sequence[str], cap: int | None = None) -> list[int]:
    """Per-prompt max new tokens: the pipeline's span budget for the kind, or `cap` if smaller."""
    from pipeline.kinds import get_kind

    return [min(get_kind(k).span_tokens, cap or 10**9) for k in kinds]


# -- decoding -----------------------------------------------------------------------------------
@dataclass
class Arm:
    """One decoder's outputs on the prompts, with what the quality measures need."""

    name: str
    rows: list  # RowResult per prompt
    seconds: float
    nll: list[tuple[float, int]] = field(default_factory=list)  # (sum NLL, tokens) per prompt
    checks: list[dict[str, bool]] = field(default_factory=list)  # check name -> passed, per prompt

    @property
    def tokens(self) -> int:
        return sum(r.generated_tokens for r in self.rows)

    @property
    def tokens_per_forward(self) -> float:
        return self.tokens / max(1, sum(r.forward_passes for r in self.rows))

    def gen_ppl(self, idx: Sequence[int] | None = None) -> float:
        return perplexity([self.nll[i] for i in (idx if idx is not None else range(len(self.nll)))])

    def pass_rate(self, idx: Sequence[int] | None = None) -> float:
        return pass_rate([self.checks[i] for i in (idx if idx is not None else range(len(self.checks)))])


def decode_ar(lm, prompts: list[list[int]], caps: list[int], batch_size: int = 8) -> Arm:
    """Greedy AR on the base model, stopping at EOS or the cap (rows leave the batch when done)."""
    from generators.decoding.ar import ARConfig, generate_ar

    rows, t0 = [], time.perf_counter()
    for i in range(0, len(prompts), batch_size):
        rows += generate_ar(lm.model, prompts[i:i + batch_size], eos_token_ids=lm.eos_token_ids,
                            pad_token_id=lm.pad_token_id, config=ARConfig(max_new_tokens=max(caps)),
                            max_new_tokens=caps[i:i + batch_size])
    return Arm("AR greedy", rows, time.perf_counter() - t0)


def decode_refiner(refiner, prompts: list[list[int]], caps: list[int], *, strategy, block: int, sub: int,
                   batch_size: int = 1, name: str | None = None) -> Arm:
    """The refiner with a decoding strategy (threshold τ, or draft-and-verify), stopping at EOS or the cap."""
    from generators.decoding.proposals import DecodeConfig

    cfg = DecodeConfig(block_size=block, sub_block_size=sub, max_new_tokens=max(caps))
    rows, t0 = [], time.perf_counter()
    for i in range(0, len(prompts), batch_size):
        rows += refiner.generate(prompts[i:i + batch_size], config=cfg, strategy=strategy,
                                 max_new_tokens=caps[i:i + batch_size])
    return Arm(name or strategy_label(strategy), rows, time.perf_counter() - t0)


def strategy_label(strategy) -> str:
    if strategy.verifies:
        return f"refiner verify D={strategy.drafts}" + ("" if strategy.draft_tree else " (no tree)")
    return f"refiner τ={strategy.threshold}"


# -- generative perplexity ----------------------------------------------------------------------
@torch.inference_mode()
def generated_nll(model: torch.nn.Module, prompts: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]], *,
                  pad_token_id: int, batch_size: int = 4) -> list[tuple[float, int]]:
    """(sum of -log p(token | prompt, earlier tokens), number of tokens) of each output under `model`.

    Right padding: real tokens never attend to the pads after them (causal), and their positions
    are 0..len-1 as in a single-row forward, so the result does not depend on the batch.
    """
    device = next(model.parameters()).device
    out: list[tuple[float, int]] = []
    for start in range(0, len(prompts), batch_size):
        seqs = [list(p) + list(o) for p, o in zip(prompts[start:start + batch_size], outputs[start:start + batch_size])]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad_token_id, dtype=torch.long)  # (R, T)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)  # (R, T)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, :len(s)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits  # (R, T, V)
        for i, (p, o) in enumerate(zip(prompts[start:start + batch_size], outputs[start:start + batch_size])):
            n_p, n_o = len(p), len(o)
            if n_o == 0:
                out.append((0.0, 0))
                continue
            # hidden state t predicts token t+1: outputs at n_p..n_p+n_o-1 come from logits n_p-1..n_p+n_o-2
            logp = torch.log_softmax(logits[i, n_p - 1:n_p + n_o - 1].float(), dim=-1)  # (n_o, V)
            target = torch.tensor(o, dtype=torch.long, device=logp.device)  # (n_o,)
            out.append((float(-logp.gather(-1, target[:, None]).sum()), n_o))
    return out


def perplexity(nll: Sequence[tuple[float, int]]) -> float:
    """Token-weighted: exp(total NLL / total tokens); NaN when there are no tokens."""
    total, count = sum(n for n, _ in nll), sum(c for _, c in nll)
    return math.exp(total / count) if count else float("nan")


# -- validators ---------------------------------------------------------------------------------
def pass_rate(checks: Sequence[dict[str, bool]]) -> float:
    """Share of outputs that pass every one of their checks; NaN when there are none."""
    return sum(all(c.values()) for c in checks) / len(checks) if checks else float("nan")


def check_span(kind: str, user_prompt: str, text: str) -> dict[str, bool]:
    """Run the raw-span checks of `kind` (see the module docstring) -> {check name: passed}."""
    from pipeline.kinds.code import extract_code, with_imports
    from pipeline.text import clean_paragraphs, strip_chat_artifacts
    from validators.base import ValidationContext
    from validators.contradiction.validator import Contradictions, ProductAttributes
    from validators.degeneration import Degeneration
    from validators.python_syntax import PythonSyntax
    from validators.registry import ValidatorSettings
    from validators.sandbox.validator import SandboxTests

    text = strip_chat_artifacts(text)
    if kind == "code":
        code = with_imports(extract_code(text))
        ctx = ValidationContext(kind="code", input={"prompt": user_prompt, "tests": prompt_tests(user_prompt)})
        syntax = PythonSyntax().check(code, ctx)
        # code that does not parse fails its tests too; skip the sandbox process for it
        tests = SandboxTests().check(code, ctx).passed if syntax.passed else False
        return {"python_syntax": syntax.passed, "sandbox_tests": tests}
    heading = re.search(r'Write the section "(.+?)"', user_prompt)
    body = clean_paragraphs(text, drop_heading=heading.group(1) if heading else None)
    min_words = dict(ValidatorSettings().min_words)[kind]
    ctx = ValidationContext(kind=kind, input={})
    out = {
        "degeneration": Degeneration(min_words=min_words).check(body, ctx).passed,
        "contradiction": Contradictions(nli=None, encoder=None, use_rules=True).check(body, ctx).passed,
    }
    if kind == "product":
        name, attributes = prompt_facts(user_prompt)
        ctx = ValidationContext(kind="product", input={"name": name, "attributes": attributes})
        out["product_attributes"] = ProductAttributes(nli=None, use_rules=True).check(
            json.dumps({"description": body}), ctx).passed
    return out


def prompt_tests(user_prompt: str) -> list[str]:
    """The assert lines a held-out code prompt shows (`prompts.code_prompt`)."""
    return [line for line in user_prompt.split("It must pass these tests:\n", 1)[-1].splitlines()
            if line.startswith("assert")]


def prompt_facts(user_prompt: str) -> tuple[str, dict]:
    """(product name, attributes) back from a held-out product prompt (`prompts.product_prompt`)."""
    m = re.search(r"description for the (.+?)\. Facts: (.+?)\. Use only these facts", user_prompt)
    if not m:
        return "product", {}
    attributes: dict = {}
    for part in m.group(2).split("; "):
        key, _, value = part.partition(": ")
        attributes[key] = {"True": True, "False": False}.get(value, int(value) if value.isdigit() else value)
    return m.group(1), attributes


# -- sweep plot and training curve --------------------------------------------------------------
def plot_tau_sweep(points: Sequence[dict], ar: dict, path: Path | str, *, tpf_target: float = 2.5,
                   ppl_ratio_target: float = 1.3, pass_gap: float = 0.05, title: str = "",
                   verify_points: Sequence[dict] = ()) -> Path:
    """Two panels against tokens per forward: gen perplexity and pass rate, AR and targets marked.

    points: [{"tau", "tokens_per_forward", "gen_ppl", "pass_rate"}]; ar: {"gen_ppl", "pass_rate"};
    verify_points: the same keys with "drafts" instead of "tau" (the draft-and-verify decoder).
    Uses the Agg canvas directly, so no global matplotlib backend is changed.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(10, 4.2), tight_layout=True)
    FigureCanvasAgg(fig)
    x = [p["tokens_per_forward"] for p in [*points, *verify_points]]
    panels = (("gen_ppl", "generative perplexity (base model)", ar["gen_ppl"] * ppl_ratio_target,
               f"target ≤ {ppl_ratio_target}x AR"),
              ("pass_rate", "validator pass rate", ar["pass_rate"] - pass_gap, f"target ≥ AR - {pass_gap:.2f}"))
    for i, (key, label, target, target_label) in enumerate(panels):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.plot([p["tokens_per_forward"] for p in points], [p[key] for p in points], "o-",
                label="refiner, threshold τ")
        for j, p in enumerate(points):  # labels alternate above / below: neighbouring τ often sit close
            ax.annotate(f"τ={p['tau']}", (p["tokens_per_forward"], p[key]), textcoords="offset points",
                        xytext=(4, 5 if j % 2 == 0 else -12), fontsize=8)
        if verify_points:
            ax.plot([p["tokens_per_forward"] for p in verify_points], [p[key] for p in verify_points], "s-",
                    color="tab:purple", label="refiner, draft-and-verify")
            for j, p in enumerate(verify_points):  # alternate too: the points sit close along x
                ax.annotate(f"D={p['drafts']}", (p["tokens_per_forward"], p[key]), textcoords="offset points",
                            xytext=(4, -12 if j % 2 == 0 else 6), fontsize=8, color="tab:purple")
        ax.axhline(ar[key], color="k", lw=1, label="AR greedy")
        ax.axhline(target, color="r", ls="--", lw=1, label=target_label)
        ax.axvline(tpf_target, color="g", ls=":", lw=1, label=f"target {tpf_target} tok/fwd")
        ax.set_xlabel("tokens per forward (batch 1)")
        ax.set_ylabel(label)
        ax.set_xlim(left=min(0.9, *x), right=max(tpf_target + 0.2, *x))
        if key == "pass_rate":
            ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    return path


def training_curve(path: Path | str) -> list[tuple]:
    """(step, tokens seen, diff acc, threshold tokens/forward, agreement, verify tokens/forward) rows of a
    training metrics.jsonl, one per step (a final record repeats its step); verify is None in runs
    older than the draft-and-verify evaluation."""
    by_step = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            m = json.loads(line)
            by_step[m.get("step")] = (m.get("step"), m.get("tokens_seen"), m.get("diff_acc"), m.get("tokens_per_forward"),
                                      m.get("agreement_with_ar"), m.get("verify_tokens_per_forward"))
    return list(by_step.values())
