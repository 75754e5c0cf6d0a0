"""The refiner's adapter training loop on a tiny model: it trains, evaluates, checkpoints and resumes."""

from __future__ import annotations

import json

import torch

from generators.decoding.families import get_family
from generators.loading import load_model
from generators.training.data import DataConfig, self_distill, write_jsonl
from generators.training.prompts import ChatPrompt
from generators.training.train import TrainConfig, train


def _data(tmp_path, lm):
    prompts = [ChatPrompt("article", f"Write about topic number {i}.") for i in range(10)]
    rows = self_distill(lm, prompts, DataConfig(max_response_tokens=12, generation_batch=5))
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "train.jsonl", rows[:8])
    write_jsonl(data / "heldout.jsonl", rows[8:])
    return data


def test_training_runs_evaluates_and_resumes(tmp_path):
    torch.manual_seed(0)
    lm = load_model("tiny-llama", cache_dir=tmp_path, dtype="float64")
    data = _data(tmp_path, lm)
    out = tmp_path / "run"
    cfg = TrainConfig(batch_size=2, max_steps=4, warmup_steps=1, eval_every=2, eval_prompts=2, eval_new_tokens=8,
                      checkpoint_every=2, precision="fp32", lora_r=4, lora_alpha=8, lr=1e-2, max_response_tokens=12)
    result = train(lm, get_family("tiny-shifted"), data, out, cfg)
    assert result["state"]["step"] == 4 and result["state"]["tokens_seen"] > 0
    records = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["tag"] for r in records] == ["start", "periodic", "periodic", "final"]
    # the run ended on an evaluation step (4): the final record is that evaluation, not a second decode
    assert [r["step"] for r in records] == [0, 2, 4, 4]
    assert {**records[-1], "tag": "periodic"} == records[-2]
    for r in records:
        assert r["diff_loss"] > 0 and r["tokens_per_forward"] >= 1.0
        # draft-and-verify on the base weights reproduces the base model's own replies, token for token,
        # whatever the adapter has learnt so far
        assert r["verify_agreement_with_ar"] == 1.0 and r["verify_tokens_per_forward"] >= 1.0
    # the adapter moved: the LoRA B factors start at zero and are trained, and (on every token) they
    # change the AR predictions too
    assert records[-1]["ar_loss"] != records[0]["ar_loss"]
    assert any(float(p.detach().abs().sum()) > 0 for n, p in result["model"].named_parameters() if "lora_B" in n)
    # resuming with more steps continues from the checkpoint instead of starting again
    lm2 = load_model("tiny-llama", cache_dir=tmp_path, dtype="float64")
    again = train(lm2, get_family("tiny-shifted"), data, out, TrainConfig(**{**cfg.__dict__, "max_steps": 5}))
    assert again["state"]["step"] == 5
    tags = [json.loads(l)["tag"] for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert tags == ["start", "periodic", "periodic", "final", "final"]


def test_draft_only_training_leaves_the_clean_copy_on_the_base_weights(tmp_path):
    torch.manual_seed(0)
    lm = load_model("tiny-llama", cache_dir=tmp_path, dtype="float64")
    data = _data(tmp_path, lm)
    cfg = TrainConfig(batch_size=2, max_steps=3, warmup_steps=1, eval_every=0, eval_prompts=2, eval_new_tokens=6,
                      checkpoint_every=0, precision="fp32", lora_r=4, lora_alpha=8, lr=5e-2, max_response_tokens=12,
                      draft_only_lora=True)
    result = train(lm, get_family("tiny-shifted"), data, tmp_path / "run", cfg)
    records = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    start, final = records[0], records[-1]
    # the diffusion targets moved, the AR predictions (clean copy) are the base model's before and after
    assert final["diff_loss"] != start["diff_loss"]
    assert final["ar_loss"] == start["ar_loss"]
    assert any(float(p.detach().abs().sum()) > 0 for n, p in result["model"].named_parameters() if "lora_B" in n)


def test_a_run_can_start_from_an_existing_adapter(tmp_path):
    import pytest

    from generators.adapter_io import save_adapter

    torch.manual_seed(0)
    lm = load_model("tiny-llama", cache_dir=tmp_path, dtype="float64")
    data = _data(tmp_path, lm)
    cfg = TrainConfig(batch_size=2, max_steps=2, warmup_steps=1, eval_every=0, eval_prompts=2, eval_new_tokens=6,
                      checkpoint_every=0, precision="fp32", lora_r=4, lora_alpha=8, lr=5e-2, max_response_tokens=12)
    first = train(lm, get_family("tiny-shifted"), data, tmp_path / "a", cfg)
    save_adapter(first["model"], tmp_path / "adapter", base_name="tiny-llama")
    records_a = [json.loads(l) for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    start_a, final_a = records_a[0], records_a[-1]
    assert abs(final_a["diff_loss"] - start_a["diff_loss"]) > 0.1  # the first run moved
    again = load_model("tiny-llama", cache_dir=tmp_path, dtype="float64")
    cont = TrainConfig(**{**cfg.__dict__, "init_from": str(tmp_path / "adapter")})
    train(again, get_family("tiny-shifted"), data, tmp_path / "b", cont)
    start_b = json.loads((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()[0])
    # the second run starts where the first ended (bf16 storage of the adapter: close, not bit-equal)
    assert start_b["tag"] == "start" and abs(start_b["diff_loss"] - final_a["diff_loss"]) < 0.02
    with pytest.raises(ValueError, match="LoRA rank is 4, this run's is 8"):
        train(load_model("tiny-llama", cache_dir=tmp_path, dtype="float64"), get_family("tiny-shifted"), data,
              tmp_path / "c", TrainConfig(**{**cont.__dict__, "lora_r": 8}))


def test_the_one_command_run_writes_adapter_metrics_and_a_card_with_the_verify_curve(tmp_path):
    """`python -m generators.training.run` end to end on the tiny model: data, training, sweep, export."""
    from generators.training.run import main

    torch.manual_seed(0)
    out = tmp_path / "run"
    metrics = main(["--out", str(out), "--model", "tiny-llama", "--family", "tiny-shifted", "--cache-dir",
                    str(tmp_path / "cache"), "--train-prompts", "6", "--heldout-prompts", "2", "--generation-batch", "4",
                    "--max-response-tokens", "10", "--batch-size", "2", "--max-steps", "2", "--eval-every", "1",
                    "--eval-prompts", "2", "--lora-r", "4", "--precision", "fp32", "--checkpoint-every", "0",
                    "--draft-only-lora"])
    assert (out / "adapter" / "adapter_config.json").exists() and metrics["adapter_files"]
    assert json.loads((out / "metrics.json").read_text())["train"]["step"] == 2
    # the curve carries the default decoder's tokens per forward at every evaluation
    assert [c["step"] for c in metrics["curve"]] == [0, 1, 2]  # one row per step: the final one is step 2
    assert all(c["verify_tokens_per_forward"] >= 1.0 for c in metrics["curve"])
    card = (out / "adapter" / "README.md").read_text()
    assert "| verify tokens/forward |" in card and "applied to the noisy copies only" in card
    assert f"{metrics['final']['verify_tokens_per_forward']} tokens per forward" in card
    assert "--draft-only-lora" in card  # the exact command that reproduces it

    # a run continued from that adapter (same data, reused) nests the first card in its own
    import shutil

    shutil.copytree(out / "data", tmp_path / "run2" / "data")
    main(["--out", str(tmp_path / "run2"), "--model", "tiny-llama", "--family", "tiny-shifted", "--cache-dir",
          str(tmp_path / "cache"), "--batch-size", "2", "--max-steps", "1", "--eval-every", "0", "--eval-prompts", "1",
          "--lora-r", "4", "--precision", "fp32", "--checkpoint-every", "0", "--init-from", str(out / "adapter")])
    card2 = (tmp_path / "run2" / "adapter" / "README.md").read_text()
    assert card2.startswith("# tiny-shifted") and "\n## Started from\n" in card2
    first = card2.split("\n## Started from\n", 1)[1]
    assert "\n# " not in first and "\n### Reproduce\n" in first  # the first card, headings one level down
    assert f"{metrics['final']['verify_tokens_per_forward']} tokens per forward" in first
