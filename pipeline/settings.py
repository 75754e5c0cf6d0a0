"""The one settings object.

Every knob of hybridgen is a field here, read from an environment variable `HYBRIDGEN_<FIELD>`
(upper case). The README's configuration table is checked against this class by a test, so a new
field without documentation fails CI.

Why not pydantic-settings: it would be one more dependency for ~60 lines, and we want unknown
`HYBRIDGEN_*` variables to be an error (a typo in production should not silently fall back to the
embedded SQLite database).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import platformdirs

from service.modes import MODES

ENV_PREFIX = "HYBRIDGEN_"
DEFAULT_MODEL = "smollm2-135m-instruct"
DEVICES = re.compile(r"auto|cpu|cuda(:\d+)?")
DTYPES = ("auto", "float32", "bfloat16", "float16", "fp32", "bf16", "fp16")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
RANGES: tuple[tuple[str, float, float | None, bool], ...] = (
    # (field, low, high or None, low allowed): numbers whose nonsense values would only show up later,
    # as a traceback per item or a silent no-op (a chunk of 0 items, a temperature of 70 for 0.7)
    ("chunk_size", 1, 10_000, True),
    ("max_new_tokens", 1, 32_768, True),
    ("temperature", 0.0, 5.0, True),
    ("retry_temperature", 0.0, 5.0, False),
    ("top_p", 0.0, 1.0, False),
    ("worker_concurrency", 1, 1024, True),
    ("torch_threads", 0, 4096, True),
    ("worker_max_tasks_per_child", 0, None, True),
    ("task_time_limit_s", 1, None, True),
    ("visibility_timeout_s", 1, None, True),
    ("broker_poll_interval_s", 0.0, None, False),
    ("heartbeat_interval_s", 0.0, None, False),
    ("stale_after_s", 0.0, None, False),
    ("reaper_interval_s", 0.0, None, True),
    ("reenqueue_after_s", 0.0, None, True),
    ("serve_port", 1, 65_535, True),
    ("login_attempts_per_minute", 1, None, True),
    ("max_request_mb", 1, None, True),
    ("progress_interval_s", 0.0, None, True),
    ("webhook_max_attempts", 1, 100, True),
    ("webhook_backoff_s", 0.0, None, True),
    ("webhook_timeout_s", 0.0, 300.0, False),
    ("alert_min_items", 1, None, True),
    ("topic_threshold", -1.0, 1.0, True),
)


def setting(default: Any, help: str) -> Any:
    """A settings field: its default and the one line the README shows for it."""
    return field(default=default, metadata={"help": help})


class SettingsError(ValueError):
    """An environment variable could not be read as the setting it names."""


@dataclass(frozen=True)
class Settings:
    # -- where things live -------------------------------------------------------------------
    data_dir: Path = setting(
        Path(platformdirs.user_data_dir("hybridgen")),
        "Folder for the embedded SQLite database and broker.",
    )
    cache_dir: Path = setting(
        Path(platformdirs.user_cache_dir("hybridgen")),
        "Folder for converted model weights and other caches.",
    )
    database_url: str = setting(
        "",
        "SQLAlchemy URL; empty means SQLite at DATA_DIR/hybridgen.sqlite.",
    )
    broker_url: str = setting(
        "",
        "Celery broker URL; empty means kombu's SQLAlchemy transport on DATA_DIR/broker.sqlite.",
    )
    # -- models ------------------------------------------------------------------------------
    model: str = setting(
        DEFAULT_MODEL,
        "Planner / AR model: the default alias, an HF model id, a local path, or tiny-llama / "
        "tiny-qwen2 (random test models) / tiny-llama-smollm2-vocab (a random test model with the default "
        "model's 49k tokenizer).",
    )
    device: str = setting("auto", "Torch device: auto (cuda when available), cpu, cuda, cuda:N.")
    dtype: str = setting("auto", "Weights dtype: auto (bf16 on CUDA and on CPUs with AMX or AVX512-BF16, else fp32), float32, bfloat16, float16.")
    # -- generation --------------------------------------------------------------------------
    max_new_tokens: int = setting(320, "Hard cap on generated tokens per AR call.")
    temperature: float = setting(0.0, "Sampling temperature; 0 means greedy.")
    top_p: float = setting(1.0, "Nucleus sampling mass when temperature > 0.")
    seed: int = setting(0, "Seed for sampled decoding; output is deterministic for a fixed seed.")
    # -- hybrid pipeline ---------------------------------------------------------------------
    default_mode: str = setting("hybrid", "Mode of batches submitted without --mode: hybrid, ar or plain.")
    hybrid_kinds: str = setting(
        "article,product,code", "Kinds that use the hybrid path in hybrid mode; others go straight to AR."
    )
    lookup_drafts: int = setting(
        8, "Planner and refiner: most prompt-lookup drafts per step (0: off). Where a row's last tokens occurred "
           "before in its prompt or output, the tokens that followed are drafted and verified (a plan or record "
           "restates the attributes, code its prompt's names); they change how many tokens a forward yields, never "
           "which."
    )
    refiner_adapter: str = setting(
        "default", "Refiner LoRA: default (shipped in generators/weights), none (base weights), or a folder path."
    )
    refiner_family: str = setting(
        "auto", "Refiner diffusion family (mask token, logit shift): auto (the shipped SmolLM2 adapter's for the "
                "default model; none for any other model unless an adapter is given), none (hybrid spans are "
                "drafted without an adapter), or a name from generators/decoding/families.py."
    )
    refiner_block_size: int = setting(4, "Refiner block size (tokens committed to the cache together).")
    refiner_sub_block_size: int = setting(0, "Refiner sub-block size; 0 means the block size.")
    refiner_drafts: int = setting(
        2, "Refiner decoder. N > 0: draft-and-verify, N tokens drafted per step by the block-diffusion adapter and "
           "kept only where the refiner's own causal pass agrees, so the spans equal its greedy AR output "
           "(docs/benchmarks.md). 0: the confidence-threshold decoder (Fast-dLLM's τ, below)."
    )
    refiner_forward_budget: int = setting(
        0, "Draft-and-verify: most tokens one refiner forward may hold across the batch; with many spans live, "
           "each drafts fewer tokens (none at worst: a plain AR step). 0: auto (the width that the machine's measured "
           "forward cost table says yields the most tokens per second; measured once per model, dtype and device)."
    )
    refiner_threshold: float = setting(
        0.9, "Refiner confidence threshold τ (commit positions at or above it); used when REFINER_DRAFTS is 0.")
    refiner_no_repeat_ngram: int = setting(
        0, "Refiner: never commit a token that repeats an n-gram of the span (n >= 2; 0: off). Code repeats "
           "n-grams by nature, so set it per kind in HYBRIDGEN_REFINER_OVERRIDES (e.g. 'article:no_repeat=6')."
    )
    refiner_overrides: str = setting(
        "",
        "Per-kind refiner settings, e.g. 'code:drafts=3;article:threshold=0.85,no_repeat=6' (keys: block, sub, "
        "threshold, no_repeat, drafts). With the threshold decoder (drafts=0), 'article:no_repeat=6' stops its "
        "article sections from looping (docs/benchmarks.md); draft-and-verify writes what the AR model writes "
        "and needs no such rule."
    )
    retry_samples: str = setting(
        "code=3,product=2",
        "Per kind, 'kind=N,...': when a first attempt (mode ar, or the hybrid attempt) fails validation, N "
        "sampled AR versions of its spans are written under the same plan in one batch, and the first that passes "
        "is kept. Code with tests gains most (the tests pick a working body); a product's description is short "
        "and checked against its attributes. 0 or an empty value: no retries.",
    )
    retry_temperature: float = setting(0.8, "Sampling temperature of those retries (top-p is TOP_P).")
    # -- queue -------------------------------------------------------------------------------
    chunk_size: int = setting(8, "Items per queue task; they are generated as one batch.")
    queue_name: str = setting("hybridgen", "Celery queue that submit writes to and workers read.")
    worker_concurrency: int = setting(1, "Worker processes per `hybridgen worker` (one per GPU).")
    torch_threads: int = setting(
        0, "CPU threads per worker process for torch; 0 means the cores divided among this worker's processes "
           "(several `hybridgen worker`s on one CPU machine: set cores / all their processes)."
    )
    worker_max_tasks_per_child: int = setting(
        250, "A worker process is replaced by a fresh one after this many chunks (0: never). This bounds slow "
             "memory growth (about 60 MB over 10,000 items without it); the new process reloads the models "
             "from the cache."
    )
    task_time_limit_s: int = setting(1800, "Hard time limit of one chunk task, in seconds.")
    visibility_timeout_s: int = setting(
        3600, "Redis visibility timeout: an unacked task is redelivered after this (above the longest chunk)."
    )
    broker_poll_interval_s: float = setting(0.2, "How often the embedded SQLite broker is polled.")
    heartbeat_interval_s: float = setting(10.0, "How often a worker refreshes the claim on items it is running.")
    stale_after_s: float = setting(
        120.0, "A running item whose heartbeat is older than this is considered abandoned and requeued."
    )
    reaper_interval_s: float = setting(
        60.0, "How often each worker runs the reaper (requeue stale items, re-send lost tasks); 0 turns it off."
    )
    reenqueue_after_s: float = setting(
        300.0, "A queued item whose task was sent this long ago is sent again once the broker queue is empty "
               "(or after VISIBILITY_TIMEOUT_S regardless); also the grace before never-sent items are sent."
    )
    cuda_graphs: bool = setting(
        False, "Decode steps as CUDA graphs on a GPU (generators/decoding/cuda_graphs.py): one capture per step "
               "shape, replayed; off until scripts/gpu/engine.sh has held them to the eager engine on a GPU.")
    kernels: str = setting(
        "auto", "Kernel backend: auto (Triton on CUDA when it imports, the torch reference elsewhere), torch, or "
                "triton (on CPU only under TRITON_INTERPRET=1)."
    )
    # -- validators --------------------------------------------------------------------------
    validators_disabled: str = setting(
        "", "Comma-separated validators to turn off (markdown_structure, degeneration, meta_debris, garbled, "
            "topicality, category, contradiction, json_schema, product_attributes, python_syntax, signature_kept, "
            "hollow_code, sandbox_tests)."
    )
    nli_model: str = setting(
        "default", "Contradiction NLI model: default (MiniLM cross-encoder + shipped head), none (rules only), "
                   "or a path to an HF sequence-classification NLI model."
    )
    contradiction_threshold: float = setting(
        0.9, "NLI contradiction probability (both directions) above which two sentences of a text conflict."
    )
    attribute_threshold: float = setting(0.8, "NLI contradiction probability against a product attribute.")
    topic_threshold: float = setting(
        0.25, "MiniLM cosine to an article's topic (and heading) under which a sentence is off-topic; a section "
              "at least half off-topic fails the topicality check (tuned on benchmarks/defect_set's dev half).")
    sandbox_timeout_s: float = setting(10.0, "Wall-clock limit of one sandboxed test run.")
    sandbox_cpu_s: int = setting(5, "CPU-time limit of one sandboxed test run.")
    sandbox_memory_mb: int = setting(512, "Address-space limit of one sandboxed test run.")
    sandbox_disk_mb: int = setting(64, "Size of the private working folder (tmpfs) of one sandboxed test run.")
    sandbox_isolation: str = setting(
        "bwrap", "How job tests and generated code are isolated: bwrap (bubblewrap namespaces, a non-root uid, no "
                 "network; tests are refused when it cannot be set up) or none (no OS isolation: unsafe, only for "
                 "code you trust; docs/security.md)."
    )
    # -- review app and HTTP API (`hybridgen serve`) -----------------------------------------
    serve_host: str = setting("127.0.0.1", "Address `hybridgen serve` listens on.")
    serve_port: int = setting(8000, "Port `hybridgen serve` listens on.")
    secret_key: str = setting(
        "", "Signs admin session cookies; empty means a random key kept in DATA_DIR/secret_key (set it "
            "explicitly when several serve processes share sessions)."
    )
    secure_cookies: bool = setting(False, "Send the admin session cookie over HTTPS only (set behind TLS).")
    login_attempts_per_minute: int = setting(
        5, "Failed admin logins a client address may make before each further try waits (1 minute, doubling to "
           "1 hour); a username gets 4 times as many from browsers that never logged in as it, and a browser "
           "that did gets its own (docs/security-web.md)."
    )
    forwarded_allow_ips: str = setting(
        "", "Addresses of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto headers `hybridgen serve` "
            "believes (comma-separated IPs or networks, or *); empty: none, the client address is the TCP peer's."
    )
    allowed_hosts: str = setting(
        "", "Host names the server answers to (comma-separated; *.example.com matches subdomains); other Host "
            "headers get 400. Empty: any (redirects are relative either way)."
    )
    max_request_mb: int = setting(64, "Largest request body POST /api/batches accepts, in MiB.")
    # -- webhooks (a batch's announcement when it finishes; service/webhook.py) -----------------
    webhook_url: str = setting(
        "", "Webhook URL for batches submitted without one (API and `submit`); empty: none. Needs WEBHOOK_SECRET."
    )
    webhook_allowed_prefixes: str = setting(
        "", "Comma-separated URL prefixes a batch's own webhook URL must start with (e.g. "
            "https://hooks.example.com/); a guard against requests into your network (SSRF). Empty: only "
            "WEBHOOK_URL itself is accepted."
    )
    webhook_secret: str = setting(
        "", "Key of the HMAC-SHA256 signature of webhook bodies (X-Hybridgen-Signature); webhooks are off without it."
    )
    webhook_max_attempts: int = setting(6, "Tries of one webhook delivery before it is marked failed.")
    webhook_backoff_s: float = setting(
        30.0, "Wait before retrying a failed webhook delivery; it doubles after each failure (at most 1 hour)."
    )
    webhook_timeout_s: float = setting(10.0, "Seconds a webhook delivery waits for the receiver's answer.")
    log_level: str = setting("WARNING", "Logging level of the CLI (workers log at INFO unless --loglevel says otherwise).")
    progress_interval_s: float = setting(
        30.0, "Seconds between the plain progress lines (done/total, rate, ETA) that `run` and `bench` print when "
              "their output is not a terminal (CI, nohup, a log file); 0: a line per finished item."
    )
    # -- quality alerts (service/metrics.py: the review app's metrics page, GET /api/metrics, `status`) --
    alert_thresholds: str = setting(
        "", "Quality alerts, e.g. 'flag_rate>0.3,final_pass_rate<0.7,fallback_rate>0.5': a day's rate of a kind, "
            "model and mode that crosses one is shown as an alert on /admin/metrics and by `hybridgen status`. Names: "
            "first_pass_rate, final_pass_rate, fallback_rate, flag_rate, approval_rate, false_flag_rate (0 to 1), "
            "tokens_per_forward, items_per_hour. Empty: no alerts (status says they are not computed)."
    )
    alert_min_items: int = setting(
        20, "A day's group raises an alert only with at least this many items behind the rate (finished items; "
            "reviewed ones for approval_rate, flagged ones for false_flag_rate)."
    )

    # ---------------------------------------------------------------------------------------
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Read every `HYBRIDGEN_*` variable; unknown ones and unparsable values are errors."""
        env = os.environ if env is None else env
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in env.items():
            if not key.startswith(ENV_PREFIX):
                continue
            name = key[len(ENV_PREFIX):].lower()
            if name not in known:
                raise SettingsError(f"unknown setting {key}; " + _suggest(
                    name.upper(), [n.upper() for n in sorted(known)], "settings", prefix=ENV_PREFIX))
            values[name] = _parse(key, raw, known[name])
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)

    # -- derived values ----------------------------------------------------------------------
    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.data_dir).expanduser().resolve() / 'hybridgen.sqlite'}"

    @property
    def resolved_broker_url(self) -> str:
        if self.broker_url:
            return self.broker_url
        return f"sqla+sqlite:///{Path(self.data_dir).expanduser().resolve() / 'broker.sqlite'}"

    def __post_init__(self):
        if self.default_mode not in MODES:
            raise SettingsError(f"HYBRIDGEN_DEFAULT_MODE={self.default_mode!r}; expected one of {', '.join(MODES)}")
        unknown = {k.strip() for k in self.hybrid_kinds.split(",") if k.strip()} - {"article", "product", "code"}
        if unknown:
            raise SettingsError(f"HYBRIDGEN_HYBRID_KINDS names unknown kinds {sorted(unknown)}")
        if self.refiner_no_repeat_ngram < 0 or self.refiner_no_repeat_ngram == 1:
            raise SettingsError(f"HYBRIDGEN_REFINER_NO_REPEAT_NGRAM={self.refiner_no_repeat_ngram} must be 0 (off) "
                                "or an n-gram length >= 2")
        self.retry_samples_by_kind  # raises on a malformed value
        if self.retry_temperature <= 0:
            raise SettingsError(f"HYBRIDGEN_RETRY_TEMPERATURE={self.retry_temperature} must be > 0 (retries sample)")
        if self.refiner_forward_budget < 0:
            raise SettingsError(f"HYBRIDGEN_REFINER_FORWARD_BUDGET={self.refiner_forward_budget} must be >= 0 "
                                "(0: auto)")
        if not 0 <= self.lookup_drafts <= 16:
            raise SettingsError(f"HYBRIDGEN_LOOKUP_DRAFTS={self.lookup_drafts} must be from 0 (off) to 16")
        if not 0 <= self.refiner_drafts <= 16:
            raise SettingsError(f"HYBRIDGEN_REFINER_DRAFTS={self.refiner_drafts} must be from 0 (the threshold "
                                "decoder) to 16")
        from kernels.registry import BACKENDS

        if self.kernels not in BACKENDS:
            raise SettingsError(f"HYBRIDGEN_KERNELS={self.kernels!r}; expected one of {', '.join(BACKENDS)}")
        if self.sandbox_isolation not in ("bwrap", "none"):
            raise SettingsError(f"HYBRIDGEN_SANDBOX_ISOLATION={self.sandbox_isolation!r}; expected bwrap (the OS "
                                "sandbox) or none (no isolation, unsafe)")
        for name in ("sandbox_cpu_s", "sandbox_memory_mb", "sandbox_disk_mb"):
            if getattr(self, name) < 1:
                raise SettingsError(f"HYBRIDGEN_{name.upper()}={getattr(self, name)} must be at least 1")
        if self.sandbox_timeout_s <= 0:
            raise SettingsError(f"HYBRIDGEN_SANDBOX_TIMEOUT_S={self.sandbox_timeout_s} must be > 0")
        if not 0.0 < self.refiner_threshold <= 1.0:
            raise SettingsError(f"HYBRIDGEN_REFINER_THRESHOLD={self.refiner_threshold} must be in (0, 1]")
        self._check_choices_and_ranges()

    def _check_choices_and_ranges(self) -> None:
        """Values that a run would otherwise trip over late: after the batch is stored, or once per item."""
        if not DEVICES.fullmatch(self.device):
            raise SettingsError(f"HYBRIDGEN_DEVICE={self.device!r}; expected auto, cpu, cuda or cuda:N")
        from generators.decoding.families import FAMILIES

        if self.refiner_family not in ("auto", "none", *FAMILIES):
            raise SettingsError(f"HYBRIDGEN_REFINER_FAMILY={self.refiner_family!r}; expected auto, none or one of "
                                f"{', '.join(sorted(FAMILIES))}")
        if self.dtype not in DTYPES:
            raise SettingsError(f"HYBRIDGEN_DTYPE={self.dtype!r}; expected one of {', '.join(DTYPES)}")
        if self.log_level.upper() not in LOG_LEVELS:
            raise SettingsError(f"HYBRIDGEN_LOG_LEVEL={self.log_level!r}; expected one of {', '.join(LOG_LEVELS)}")
        for name, low, high, low_included in RANGES:
            value = getattr(self, name)
            if value < low or (value == low and not low_included) or (high is not None and value > high):
                if low_included:
                    allowed = f"from {low} to {high}" if high is not None else f"at least {low}"
                else:
                    allowed = f"above {low} and at most {high}" if high is not None else f"above {low}"
                raise SettingsError(f"HYBRIDGEN_{name.upper()}={value} must be {allowed}")
        self.disabled_validators  # raises on a name that is no validator
        parse_overrides(self.refiner_overrides)  # raises on a malformed value
        for prefix in self.webhook.allowed_prefixes:
            if not re.fullmatch(r"https?://[^/?#@\s\\]+([/?#]\S*)?", prefix):
                raise SettingsError(f"HYBRIDGEN_WEBHOOK_ALLOWED_PREFIXES names {prefix!r}; expected URL prefixes like "
                                    "https://hooks.example.com/ (scheme and host at least)")
        if self.webhook_url:
            from service.webhook import WebhookError, check_url

            try:
                check_url(self.webhook_url, self.webhook)
            except WebhookError as e:
                raise SettingsError(f"HYBRIDGEN_WEBHOOK_URL={self.webhook_url!r}: {e}") from None
        self.alert_threshold_list  # raises on a malformed value

    @property
    def retry_samples_by_kind(self) -> dict[str, int]:
        """HYBRIDGEN_RETRY_SAMPLES as {kind: samples}; kinds not named get none."""
        out: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in self.retry_samples.split(","))):
            kind, eq, number = (x.strip() for x in part.partition("="))
            if kind not in {"article", "product", "code"} or not eq or not number.isdigit() or int(number) > 16:
                raise SettingsError(f"HYBRIDGEN_RETRY_SAMPLES: {part!r} should look like 'code=3' (a kind: article, "
                                    "product or code; a count from 0 to 16)")
            out[kind] = int(number)
        return out

    @property
    def alert_threshold_list(self) -> tuple:
        """HYBRIDGEN_ALERT_THRESHOLDS as service.metrics.Threshold values, each name and number checked."""
        return parse_alert_thresholds(self.alert_thresholds)

    @property
    def disabled_validators(self) -> frozenset[str]:
        """HYBRIDGEN_VALIDATORS_DISABLED as names, each checked against the validator registry."""
        names = frozenset(n.strip() for n in self.validators_disabled.split(",") if n.strip())
        if names:  # the registry imports every validator's module: only when there is a name to check
            from validators.registry import ALL_VALIDATORS

            unknown = sorted(names - set(ALL_VALIDATORS))
            if unknown:
                raise SettingsError(f"HYBRIDGEN_VALIDATORS_DISABLED={self.validators_disabled!r} names {unknown[0]!r}, "
                                    "which is no validator; " + _suggest(unknown[0], ALL_VALIDATORS, "validators"))
        return names

    @property
    def allowed_host_list(self) -> list[str]:
        """HYBRIDGEN_ALLOWED_HOSTS as a list; empty means any host."""
        return [h.strip() for h in self.allowed_hosts.split(",") if h.strip()]

    @property
    def webhook(self):
        """The webhook settings as service.webhook.WebhookConfig (the service layer reads no settings)."""
        from service.webhook import WebhookConfig

        prefixes = tuple(p.strip() for p in self.webhook_allowed_prefixes.split(",") if p.strip())
        return WebhookConfig(self.webhook_url, prefixes, self.webhook_secret, self.webhook_max_attempts,
                             self.webhook_backoff_s, self.webhook_timeout_s)

    @property
    def is_embedded(self) -> bool:
        """True when both the database and the broker are the zero-setup SQLite defaults."""
        return not self.database_url and not self.broker_url


def check_paths(settings: Settings, *, create_data_dir: bool = False) -> None:
    """The folders and files the settings name, checked before anything is stored or loaded.

    A data folder other than the default must exist unless `create_data_dir`: a mistyped
    HYBRIDGEN_DATA_DIR would otherwise start a new, empty database and answer "no batch with id 1".
    """
    default_data_dir = Settings.__dataclass_fields__["data_dir"].default
    data_dir = Path(settings.data_dir).expanduser()
    if data_dir.exists() and not data_dir.is_dir():
        raise SettingsError(f"HYBRIDGEN_DATA_DIR={str(settings.data_dir)!r} is a file; expected a folder")
    if not data_dir.exists() and data_dir != default_data_dir and not create_data_dir:
        raise SettingsError(f"HYBRIDGEN_DATA_DIR={str(settings.data_dir)!r} does not exist; expected an existing "
                            "folder (create it, or pass --init, e.g. `hybridgen --init db upgrade`, to have it created)")
    cache_dir = Path(settings.cache_dir).expanduser()
    if cache_dir.exists() and not cache_dir.is_dir():
        raise SettingsError(f"HYBRIDGEN_CACHE_DIR={str(settings.cache_dir)!r} is a file; expected a folder")
    adapter = settings.refiner_adapter
    if adapter not in ("default", "none") and not Path(adapter).expanduser().is_dir():
        raise SettingsError(f"HYBRIDGEN_REFINER_ADAPTER={adapter!r}: no such folder; expected default or none, or "
                            "the path of an adapter folder")
    # the models may also be HF ids (served from the local HF cache): only what looks like a path is checked
    for name, expected in (("model", f"{DEFAULT_MODEL}, a tiny test model"), ("nli_model", "default, none")):
        value = getattr(settings, name)
        if value.startswith(("/", ".", "~")) and not Path(value).expanduser().exists():
            raise SettingsError(f"HYBRIDGEN_{name.upper()}={value!r}: no such folder; expected {expected}, an HF "
                                "model id in the local HF cache, or the path of a model folder")


def check_device(settings: Settings) -> None:
    """The device exists on this machine (imports torch: only for commands that generate)."""
    if not settings.device.startswith("cuda"):
        return
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(settings.device.partition(":")[2] or 0)
    if index >= count:
        seen = f"{count} CUDA device(s)" if count else "no CUDA device"
        raise SettingsError(f"HYBRIDGEN_DEVICE={settings.device!r}, but torch sees {seen} on this machine; "
                            "expected auto or cpu here" + (f", or cuda:0 to cuda:{count - 1}" if count else ""))


OVERRIDE_KEYS = ("block", "sub", "threshold", "no_repeat", "drafts")


@lru_cache(maxsize=8)
def parse_overrides(text: str) -> dict[str, dict[str, float]]:
    """HYBRIDGEN_REFINER_OVERRIDES: 'code:threshold=0.95,block=4;article:threshold=0.85' -> {'code': {...}, ...}."""
    out: dict[str, dict[str, float]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        kind, _, assignments = part.partition(":")
        if kind.strip() not in {"article", "product", "code"} or not assignments:
            raise SettingsError(f"HYBRIDGEN_REFINER_OVERRIDES: {part!r} should look like "
                                "'code:threshold=0.95,block=4' (kinds: article, product, code)")
        for assignment in assignments.split(","):
            key, _, value = assignment.partition("=")
            if key.strip() not in OVERRIDE_KEYS:
                raise SettingsError(f"HYBRIDGEN_REFINER_OVERRIDES: unknown key {key.strip()!r} "
                                    f"({', '.join(OVERRIDE_KEYS)})")
            try:
                number = float(value)
            except ValueError:
                raise SettingsError(f"HYBRIDGEN_REFINER_OVERRIDES: {assignment!r} needs a number") from None
            if key.strip() == "no_repeat" and not (number == 0 or (number >= 2 and number.is_integer())):
                raise SettingsError(f"HYBRIDGEN_REFINER_OVERRIDES: {kind.strip()} no_repeat={value.strip()} must be 0 "
                                    "(off) or an n-gram length >= 2")
            if key.strip() == "drafts" and not (0 <= number <= 16 and number.is_integer()):
                raise SettingsError(f"HYBRIDGEN_REFINER_OVERRIDES: {kind.strip()} drafts={value.strip()} must be an "
                                    "integer from 0 (the threshold decoder) to 16")
            lowest = 0 if key.strip() == "sub" else 1  # sub=0: the block size
            if key.strip() in ("block", "sub") and not (lowest <= number <= 256 and number.is_integer()):
                raise SettingsError(f"HYBRIDGEN_REFINER_OVERRIDES: {kind.strip()} {key.strip()}={value.strip()} must "
                                    f"be an integer from {lowest} to 256")
            if key.strip() == "threshold" and not 0 < number <= 1:
                raise SettingsError(f"HYBRIDGEN_REFINER_OVERRIDES: {kind.strip()} threshold={value.strip()} must be "
                                    "in (0, 1]")
            out.setdefault(kind.strip(), {})[key.strip()] = number
    return out


@lru_cache(maxsize=8)
def parse_alert_thresholds(text: str) -> tuple:
    """'flag_rate>0.3,final_pass_rate<0.7' -> (Threshold('flag_rate', '>', 0.3), ...)."""
    from service.metrics import METRICS, RATES, Threshold

    out: list[Threshold] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*([<>])\s*(.*)", part)
        if match is None:
            raise SettingsError(f"HYBRIDGEN_ALERT_THRESHOLDS: {part!r} should look like 'flag_rate>0.3' (a rate, "
                                "> or <, a number)")
        name, op, raw = match.groups()
        if name not in METRICS:
            close = difflib.get_close_matches(name, METRICS, n=1, cutoff=0.6)
            raise SettingsError(f"HYBRIDGEN_ALERT_THRESHOLDS: {part!r} names {name!r}, which is no rate; "
                                + (f"did you mean {close[0]}? " if close else "") + f"expected one of {', '.join(METRICS)}")
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if value != value or value in (float("inf"), float("-inf")):  # nan, inf, or not a number at all
            raise SettingsError(f"HYBRIDGEN_ALERT_THRESHOLDS: {part!r}: {raw.strip()!r} is not a number")
        if name in RATES and not 0 <= value <= 1:
            raise SettingsError(f"HYBRIDGEN_ALERT_THRESHOLDS: {part!r}: {name} is a rate from 0 to 1, got {raw.strip()}")
        if name not in RATES and value < 0:
            raise SettingsError(f"HYBRIDGEN_ALERT_THRESHOLDS: {part!r}: {name} is at least 0, got {raw.strip()}")
        if any(t.metric == name and t.op == op for t in out):
            raise SettingsError(f"HYBRIDGEN_ALERT_THRESHOLDS names {name}{op} twice; keep one")
        out.append(Threshold(name, op, value))
    return tuple(out)


def _suggest(name: str, known: Any, what: str, prefix: str = "") -> str:
    """'did you mean X?' for a near miss (a typo); the list of known names only when nothing is near.
    A prefix every name shares is left out of the comparison (it would make every name look near)."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    if close:
        return f"did you mean {prefix}{close[0]}?"
    return f"expected one of these {what}: {', '.join(prefix + k for k in known)}"


def documented_settings() -> list[tuple[str, str, str]]:
    """(ENV_NAME, default as shown in docs, help) for every setting; used by the README test."""
    rows = []
    for f in fields(Settings):
        default = f.default
        if isinstance(default, Path):
            shown = "user data dir" if f.name == "data_dir" else "user cache dir"
        else:
            shown = repr(default) if isinstance(default, str) else str(default)
        rows.append((ENV_PREFIX + f.name.upper(), shown, f.metadata["help"]))
    return rows


def _parse(key: str, raw: str, f: dataclasses.Field) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if kind == "Path":
            return Path(raw).expanduser()
        return raw
    except ValueError:
        raise SettingsError(f"{key}={raw!r} is not a valid {kind}") from None
