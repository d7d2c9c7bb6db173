"""Run configuration: a YAML file validated with pydantic, and where a run's files live.

A *system* is a model plus its decoding settings; the same model under top-p and under min-p is two
systems. A system's identity is a hash of what changes its answers (model, api_base, params), so
editing params makes a new identity and old samples are never silently mixed with new ones.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hivemind.core import layout
from hivemind.core.config_params import param_warnings
from hivemind.core.errors import HivemindError
from hivemind.core.secrets import SECRET_KEY, refuse_secrets  # noqa: F401  (SECRET_KEY: still importable from here)

PACKAGED_CONFIGS = Path(__file__).resolve().parents[1] / "configs"   # hivemind/configs
RUN_CONFIG_NAME = layout.RUN_CONFIG    # the run folder's file names are declared in hivemind.core.layout
STORE_NAME = layout.STORE
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"   # run and snapshot names: safe as folder names (matched in full)
NAME_MAX = 100
RESERVED_NAMES = layout.RESERVED         # results/snapshots/ holds the snapshots, not a run
# System names appear in tables, figures and reports, never in paths: a little more is allowed.
SYSTEM_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.@:+/ ()\[\]-]*"


def name_problem(name: object, pattern: str = NAME_PATTERN) -> str | None:
    """Why `name` is not a valid name, or None. Matched in full: `re.match` with `$` would let a trailing
    newline through, and control characters would break paths, tables and terminals."""
    if not isinstance(name, str) or not name:
        return "must be a non-empty string"
    if not name.isprintable():
        return "contains a control or invisible character"
    if len(name) > NAME_MAX:
        return f"is longer than {NAME_MAX} characters"
    if name != name.strip() or not re.fullmatch(pattern, name):
        allowed = "letters, digits, '.', '_' and '-'" if pattern == NAME_PATTERN else \
            "letters, digits, spaces and . _ - @ : + / ( ) [ ]"
        return f"use {allowed} only, starting with a letter or digit"
    return None


CONTROL_PREFIX = "control:"   # hivemind.analyze.controls names its synthetic systems so; a real system may not


def system_name_problem(name: object) -> str | None:
    """Why `name` cannot name a system (in a config or an import), or None. A real system named like a
    control would be taken for one: excluded from rankings and mixed with the synthetic answers."""
    problem = name_problem(name, SYSTEM_NAME_PATTERN)
    if problem is None and str(name).lower().startswith(CONTROL_PREFIX):
        problem = f"names starting with {CONTROL_PREFIX!r} are reserved for control systems; rename it"
    return problem


def check_name(name: object, what: str) -> str:
    """A run, snapshot or import name, or HivemindError saying what is allowed (nothing is changed)."""
    problem = name_problem(name) or (f"is reserved ({sorted(RESERVED_NAMES)})" if name in RESERVED_NAMES else None)
    if problem:
        raise HivemindError(f"{what} {name!r}: {problem} (nothing was changed)")
    return name  # type: ignore[return-value]


# Validation errors never quote the input: it may be a key that was refused. No float setting may be
# infinite or NaN: pydantic lets `.inf` through `ge=0` and `nan` through every comparison (nan >= 0 is
# False, but so is nan < 0), and `request_timeout: .inf` then surfaced as a provider 500.
STRICT = ConfigDict(extra="forbid", hide_input_in_errors=True, allow_inf_nan=False)

# Upper bounds: beyond them a value is a typo, and it would overflow SQLite's 64-bit integers (sample
# numbers), httpx's timers (timeouts) or asyncio.sleep (delays). A million samples per prompt is allowed.
MAX_COUNT = 1_000_000_000
MAX_SECONDS = 7 * 24 * 3600


class ConfigModel(BaseModel):
    """The base of every config model: unknown keys refused, inputs never quoted back, floats finite."""
    model_config = STRICT


def _valid_name(value: str) -> str:
    problem = name_problem(value) or (f"is reserved" if value in RESERVED_NAMES else None)
    if problem:
        raise ValueError(problem)
    return value


def _valid_env_name(value: str | None) -> str | None:
    """api_key_env names a variable; a key pasted there instead would be written into config.yaml."""
    if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError("must be the NAME of an environment variable (letters, digits, '_'), not a key")
    return value


# Decoding params hivemind itself reads (plan: max_tokens) or that a provider would reject only after the
# run started: checked at load. (name, integer?, low, high); None: no bound. Other params pass through.
NUMERIC_PARAMS = {
    "max_tokens": (True, 1, MAX_COUNT), "max_completion_tokens": (True, 1, MAX_COUNT), "n": (True, 1, 1),
    "top_k": (True, -1, None), "seed": (True, None, None),
    "temperature": (False, 0, None), "top_p": (False, 0, 1), "min_p": (False, 0, 1),
    "presence_penalty": (False, None, None), "frequency_penalty": (False, None, None),
}


def params_problem(params: Any, where: str = "") -> str | None:
    """Why decoding params cannot be sent, or None: a known numeric param of the wrong type or out of range,
    or an infinite/NaN number anywhere (JSON has no such numbers; providers answer 400 or 500)."""
    if isinstance(params, dict):
        for key, value in params.items():
            here = f"{where}.{key}" if where else str(key)
            rule = NUMERIC_PARAMS.get(key) if not where else None
            problem = _number_problem(value, *rule) if rule and value is not None else None
            problem = problem or params_problem(value, here)
            if problem:
                return problem if problem.startswith(here) else f"{here}: {problem}"
    elif isinstance(params, list):
        for index, value in enumerate(params):
            problem = params_problem(value, f"{where}[{index}]")
            if problem:
                return problem
    elif isinstance(params, float) and not math.isfinite(params):
        return f"{where}: must be a finite number, not {params}"
    return None


def _number_problem(value: Any, integer: bool, low: float | None, high: float | None) -> str | None:
    kind = "a whole number" if integer else "a number"
    ok_type = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type):
        return f"must be {kind}, not a {type(value).__name__}"      # never quoted: it may be a pasted key
    if not math.isfinite(value):
        return f"must be a finite number, not {value}"
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"from {low} to {high}" if low is not None and high is not None else \
            (f">= {low}" if low is not None else f"<= {high}")
        return f"must be {kind} {bounds}, not {value!r}"
    return None


def sendable_params(value: dict[str, Any]) -> dict[str, Any]:
    """The `params` check systems and scorers share (params_problem says what is wrong)."""
    problem = params_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class Endpoint(ConfigModel):
    """Where a model is reached: the checks shared by systems, scorers and embedders (each declares its own
    `model`, `api_base`, `api_key_env` and, where it sends any, `params`, so their fields keep their order).

    The key itself is never in a config: `api_key_env` must be the NAME of an environment variable, and no
    credential may hide in the model id, the URL or any param (hivemind.core.secrets). `key()` reads it."""

    @field_validator("api_key_env", check_fields=False)
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        return _valid_env_name(value)

    @model_validator(mode="after")
    def _no_secrets(self) -> "Endpoint":
        """Credentials in the model id, the URL, headers, bodies or any nested param are refused."""
        refuse_secrets({name: getattr(self, name) for name in ("model", "api_base", "params")
                        if name in type(self).model_fields})
        return self

    def key(self, who: str) -> str | None:
        """This endpoint's key, from the environment only (api_key)."""
        return api_key(who, self.model, self.api_base, self.api_key_env)


class System(Endpoint):

    name: str = Field(min_length=1)
    model: str = Field(min_length=1)
    api_base: str | None = None
    api_key_env: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    concurrency: int = Field(default=8, ge=1, le=1024)

    @field_validator("name")
    @classmethod
    def _system_name(cls, value: str) -> str:
        problem = system_name_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    _sendable_params = field_validator("params")(sendable_params)

    @property
    def identity(self) -> str:
        """Stable id of what shapes the answers. The name and concurrency are not part of it."""
        blob = json.dumps(
            {"model": self.model, "api_base": self.api_base, "params": self.params},
            sort_keys=True, separators=(",", ":"),
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Scorer(Endpoint):
    """A quality scorer (the `score` stage). Every scorer stores scores where higher is better.

    kind: judge (an LM judge through litellm), perplexity (answer log-probability under a local model),
    reward (a transformers sequence-classification reward model), relevance (cosine of answer and prompt
    embeddings), fluency (word order from the text alone, hivemind.score.fluency), imported (scores brought
    in with `hivemind import`)."""

    name: str = Field(min_length=1)
    kind: str
    model: str | None = None
    api_base: str | None = None
    api_key_env: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    concurrency: int = Field(default=4, ge=1, le=1024)
    rubric: str | None = None            # judge: "1-5" or "1-10"
    pass_at: float | None = None         # quality gate: an answer passes when its score >= pass_at

    _sendable_params = field_validator("params")(sendable_params)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        kinds = {"judge", "perplexity", "reward", "relevance", "fluency", "imported"}
        if value not in kinds:
            raise ValueError(f"must be one of {', '.join(sorted(kinds))}")
        return value

    @model_validator(mode="after")
    def _complete(self) -> "Scorer":
        if self.kind in ("judge", "reward") and not self.model:
            raise ValueError(f"scorer {self.name!r} (kind {self.kind}) needs a model")
        if self.rubric is not None and self.kind != "judge":
            raise ValueError(f"scorer {self.name!r}: a rubric is for judges only")
        if self.rubric is not None and self.rubric not in RUBRICS:
            raise ValueError(f"scorer {self.name!r}: rubric must be one of {', '.join(RUBRICS)}")
        if self.pass_at is None and self.kind == "perplexity" and self.model is None:
            self.pass_at = DEFAULT_PASS_AT["perplexity"]   # calibrated for the bundled SmolLM2 only
        if self.pass_at is None and self.kind == "fluency":
            self.pass_at = DEFAULT_PASS_AT["fluency"]
        return self


RUBRICS = ("1-5", "1-10")   # judge rubrics: hivemind/rubrics/absolute-<rubric>.txt

# Default quality gates (an answer passes when score >= pass_at), used when a scorer names none.
# perplexity, bundled SmolLM2 (mean log-probability per answer token, first 96 tokens), measured with
#   `python benchmarks/bench_score.py --calibrate --models 16 --prompts 3 --offset 200 --max-tokens 96`
#   on real AlpacaEval answers of 16 models: real min -3.26, 1% -3.21, median -1.96; the same answers'
#   words shuffled: max -4.21, 99% -4.32, median -6.35; random-vocabulary babble of the same length:
#   max -6.59, median -7.64. A second sample at the demo's 64 tokens (160 real answers, 10 per model, seed 0):
#   1% -3.61, 2% -3.13, 5% -2.92, median -1.81. The line is -3.25: it passes about 98% of real answers and
#   fails every shuffled or babbled control. -4.0 (the lowest real answer of the first sample) let fluent
#   but aimless text through: the Gemma-3-270M base model's prompt echoes and rambles in the demo passed
#   98% at -4.0, 55% at -3.25 (SmolLM2's own answers 98-100%; note SmolLM2 scores itself there).
# relevance, all-MiniLM-L6-v2 (answer-prompt cosine), `--calibrate-relevance --models 16 --prompts 12
#   --offset 300`: 192 real answers to their own prompt: min 0.174, 5% 0.333, median 0.736; the same
#   answers against another prompt: median 0.029, 95% 0.184, max 0.246. 0.15 passes every real answer
#   and 13.5% of off-topic ones (0.2: 98.4% and 2.1%); other embedders need their own calibration.
# fluency (hivemind.score.fluency, bundled table): 0.0, "word order no likelier than chance"; measured with
#   benchmarks/quality_vs_reward.py on NoveltyBench answers the table was not counted on: real answers
#   1% -0.18, 2% -0.03, median 0.65; their words shuffled: 99% -0.16, median -1.03; babble 99% -0.32.
DEFAULT_PASS_AT = {"perplexity": -3.25, "relevance": 0.15, "fluency": 0.0}
# The default offline gate of every run: a config whose scorers include no fluency gate (a fluency or
# perplexity scorer with a pass_at) gets this one added; `scorers: []` turns every scorer off.
DEFAULT_FLUENCY_SCORER = "fluency"
FLUENCY_KINDS = ("fluency", "perplexity")


class DatasetSource(ConfigModel):
    """A Hugging Face dataset, loaded through `datasets`."""

    dataset: str
    field: str = "query"
    split: str = "train"
    subset: str | None = None
    id_field: str | None = None
    category_field: str | None = None


class Embedder(Endpoint):
    """`sentence-transformers` (a local model name or path) or `litellm` (an embedding API).

    Short names that load offline from PyPI wheels: `all-MiniLM-L6-v2` (the default) and
    `tokenlearn-static-model` (a static embedder, a different architecture). `window` overrides the
    tokens read per chunk (default: the model's own limit); longer texts are chunked, never cut."""

    provider: Literal["sentence-transformers", "litellm"] = "sentence-transformers"
    model: str = DEFAULT_EMBEDDER
    api_base: str | None = None
    api_key_env: str | None = None
    batch_size: int = Field(default=64, ge=1, le=MAX_COUNT)
    window: int | None = Field(default=None, ge=16, le=MAX_COUNT)
    backend: Literal["torch", "torch-fp16", "onnx", "onnx-int8"] = "torch"   # hivemind.embed.backends
    device: Literal["cpu", "cuda"] = "cpu"

    @model_validator(mode="after")
    def _backend_fits(self) -> "Embedder":
        if (self.backend != "torch" or self.device != "cpu") and (
                self.provider != "sentence-transformers" or self.model == "tokenlearn-static-model"):
            raise ValueError(f"`backend`/`device` apply to local sentence-transformers models only, "
                             f"not {self.provider}:{self.model}")
        return self

    @property
    def id(self) -> str:
        # A changed window changes the vectors of long texts, so it is part of the cache key.
        # So does the backend (fp16, int8, ONNX kernels give other vectors): vectors of backends never mix.
        # The device does not: torch fp32 on CPU and on CUDA agree to float rounding.
        # An int8 backend also carries its quantisation recipe (backend_label): a new recipe, new vectors.
        backend = f"#{backend_label(self.backend)}" if self.backend != "torch" else ""
        return f"{self.provider}:{self.model}" + (f"@{self.window}" if self.window else "") + backend


# The default int8 quantisation recipe of the `onnx-int8` backend (hivemind.embed.backends.Int8Recipe parses
# it): declared here because it is part of the embedder's id, which the config owns.
INT8_RECIPE_TAG = "matmul-pc-s8-fused-fp32.ffnout"


def backend_label(backend: str) -> str:
    """The backend as it enters the embedder id: `onnx-int8` carries its recipe."""
    return f"{backend}-{INT8_RECIPE_TAG}" if backend == "onnx-int8" else backend


EQUIVALENCE_METHODS = ("learned", "embedding", "classifier", "judge", "imported")
NOVELTYBENCH_CLASSIFIER = "yimingzhang/deberta-v3-large-generation-similarity"
NOVELTYBENCH_THRESHOLD = 0.102     # NoveltyBench: equivalent when the classifier's probability exceeds this


class Equivalence(Endpoint):
    """Which answers say the same thing (distinct ideas, utility): hivemind.analyze.equivalence.

    method: `learned` (default: the shipped pair model over the bundled MiniLM's vectors and the texts; other
    embedders fall back to `embedding`), `embedding` (cosine >= a line), `classifier` (NoveltyBench's DeBERTa
    through transformers; `model` may name another local sequence-pair classifier), `judge` (an LM through
    litellm, asked once per compared pair; verdicts stored, cost counted against max_cost), `imported`
    (NoveltyBench partitions.jsonl brought in with `hivemind import --partitions`).
    threshold: the line of the method's score (learned: probability; embedding: cosine; classifier:
    probability, default NoveltyBench's 0.102); absent, the method's calibrated default."""

    method: Literal["learned", "embedding", "classifier", "judge", "imported"] = "learned"
    model: str | None = None
    api_base: str | None = None
    api_key_env: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    concurrency: int = Field(default=4, ge=1, le=1024)
    threshold: float | None = Field(default=None, ge=-1, le=1)

    _sendable_params = field_validator("params")(sendable_params)

    @property
    def id(self) -> str:
        """The configured method as an id (part of a pinned calibration's key): its verdict id, or the method and
        a configured line."""
        if self.verdict_method is not None:
            return self.verdict_method
        return self.method + (f"@{self.threshold:g}" if self.threshold is not None else "")

    @property
    def verdict_method(self) -> str | None:
        """The id its verdicts are stored under (equivalence_verdicts.method) for the methods decided pair by pair
        before analysis (judge, classifier, imported); None for those computed in analysis."""
        if self.method == "judge":
            return f"judge:{self.model}"
        if self.method == "classifier":
            line = NOVELTYBENCH_THRESHOLD if self.threshold is None else self.threshold
            return f"classifier:{self.model}@{line:g}"
        if self.method == "imported":
            return "imported"
        return None

    @model_validator(mode="after")
    def _complete(self) -> "Equivalence":
        if self.method == "judge" and not self.model:
            raise ValueError("equivalence method judge needs a `model` (a litellm model id)")
        if self.method == "classifier" and not self.model:
            self.model = NOVELTYBENCH_CLASSIFIER
        if self.method in ("learned", "embedding", "imported") and (self.model or self.api_base):
            raise ValueError(f"equivalence method {self.method} takes no `model` or `api_base`")
        return self


class RunConfig(ConfigModel):

    name: str
    prompts: str | DatasetSource
    limit: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    seed: int = Field(default=0, ge=-2**62, le=2**62)      # stored and hashed: a 64-bit integer
    samples: int = Field(default=8, ge=1, le=MAX_COUNT)
    systems: list[System] = Field(min_length=1)
    embedder: Embedder = Field(default_factory=Embedder)
    scorers: list[Scorer] = Field(default_factory=list)
    equivalence: Equivalence = Field(default_factory=Equivalence)
    near_duplicate_threshold: float = Field(default=0.9, gt=0, le=1)
    # Systems (names of this config's) whose answers calibrate the floor, idea line and relevance line, pinned
    # per (embedder, equivalence, prompt set) under results/.calibrations/; absent: the systems of the first
    # analysis that needs the record (hivemind.results.calibration).
    calibration_reference: list[str] | None = Field(default=None, min_length=1)
    max_cost: float | None = Field(default=None, gt=0)     # USD; finite (ConfigModel)
    max_attempts: int = Field(default=8, ge=1, le=50)     # per sample, first try included
    retry_base_delay: float = Field(default=1.0, ge=0, le=MAX_SECONDS)   # seconds; doubles per attempt, full jitter
    retry_max_delay: float = Field(default=60.0, ge=0, le=MAX_SECONDS)
    request_timeout: float = Field(default=120.0, gt=0, le=MAX_SECONDS)  # seconds per request
    # --results, else this, else $HIVEMIND_RESULTS, else results/ (layout.results_root)
    results_dir: str = Field(default_factory=layout.default_root)

    @field_validator("name")
    @classmethod
    def _run_name(cls, value: str) -> str:
        return _valid_name(value)

    @field_validator("prompts")
    @classmethod
    def _no_secrets_in_prompts(cls, value):
        refuse_secrets({"prompts": value if isinstance(value, str) else value.model_dump()})
        return value

    @field_validator("equivalence", mode="before")
    @classmethod
    def _equivalence_shorthand(cls, value: Any) -> Any:
        return {"method": value} if isinstance(value, str) else value

    @field_validator("embedder", mode="before")
    @classmethod
    def _embedder_shorthand(cls, value: Any) -> Any:
        return {"model": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _unique_system_names(self) -> "RunConfig":
        seen: set[str] = set()
        identities: dict[str, str] = {}
        for system in self.systems:
            if system.name in seen:
                raise ValueError(f"system name {system.name!r} appears twice")
            seen.add(system.name)
            # Responses are keyed by identity: two systems sharing one would share (and split) one set of answers.
            if system.identity in identities:
                raise ValueError(f"systems {identities[system.identity]!r} and {system.name!r} have the same "
                                 f"model, api_base and params, so they are one system; remove one or change its params")
            identities[system.identity] = system.name
        for scorer in self.scorers:   # the relevance gate is calibrated for the default embedder only
            if scorer.kind == "relevance" and scorer.pass_at is None and self.embedder.model == DEFAULT_EMBEDDER:
                scorer.pass_at = DEFAULT_PASS_AT["relevance"]
        unknown = [n for n in self.calibration_reference or [] if n not in seen]
        if unknown:
            raise ValueError(f"calibration_reference names {', '.join(map(repr, unknown))}, not a system of this "
                             f"config (it has: {', '.join(sorted(seen))})")
        self._add_default_fluency()
        names = [scorer.name for scorer in self.scorers]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"scorer name {name!r} appears twice")
        return self

    def _add_default_fluency(self) -> None:
        """Every run gets an offline gate that fails word salad and babble (DEFAULT_FLUENCY_SCORER)."""
        if "scorers" in self.model_fields_set and not self.scorers:
            return                                   # `scorers: []`: no scorer at all, on purpose
        if any(s.kind in FLUENCY_KINDS and s.pass_at is not None for s in self.scorers):
            return
        taken = {s.name for s in self.scorers}
        name = DEFAULT_FLUENCY_SCORER if DEFAULT_FLUENCY_SCORER not in taken else "default-fluency"
        self.scorers.append(Scorer(name=name, kind="fluency"))

    # Where things live ------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return Path(self.results_dir) / self.name

    @property
    def store_path(self) -> Path:
        return self.run_dir / STORE_NAME

    def system(self, name: str) -> System:
        for system in self.systems:
            if system.name == name:
                return system
        raise HivemindError(f"run {self.name!r} has no system named {name!r}; "
                            f"it has: {', '.join(s.name for s in self.systems)}")

    def scorer(self, name: str) -> Scorer:
        for scorer in self.scorers:
            if scorer.name == name:
                return scorer
        known = ", ".join(s.name for s in self.scorers) or "none (add a `scorers:` list to the config)"
        raise HivemindError(f"run {self.name!r} has no scorer named {name!r}; it has: {known}")

    def param_warnings(self) -> list[str]:
        """A line per `params:` key of a system, scorer or the equivalence judge that looks like a misspelt
        decoding parameter (hivemind.core.config_params): sent as written, it would be ignored or refused."""
        lines = [line for s in self.systems for line in param_warnings(s.params, f"system {s.name!r}")]
        lines += [line for s in self.scorers for line in param_warnings(s.params, f"scorer {s.name!r}")]
        return lines + param_warnings(self.equivalence.params, "equivalence")

    def public_dict(self) -> dict[str, Any]:
        """The config as data, safe to publish: key *variable names* stay, values never enter it."""
        return self.model_dump(mode="json", exclude_none=True)


LOCAL_SERVER_KEY = "sk-no-key"  # OpenAI-compatible servers (llama.cpp, vLLM) want some key


def api_key(who: str, model: str, api_base: str | None, api_key_env: str | None) -> str | None:
    """The key for one endpoint, from the environment only. Raises before any request when it is missing.

    None means litellm reads the provider's own variable (which validate_environment found set)."""
    if api_key_env:
        value = os.environ.get(api_key_env)
        if not value:
            raise HivemindError(f"{who}: environment variable {api_key_env} (api_key_env) is not set")
        return value
    if api_base:
        return LOCAL_SERVER_KEY
    import litellm

    missing = litellm.validate_environment(model=model).get("missing_keys") or []
    if missing:
        raise HivemindError(f"{who}: model {model!r} needs {', '.join(missing)} in the environment "
                            f"(or set api_key_env)")
    return None


def require_keys(systems: list[System]) -> None:
    """Fail before any request when a system's key is missing."""
    for system in systems:
        system.key(f"system {system.name!r}")

