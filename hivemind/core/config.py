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

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hivemind.core.errors import HivemindError
from hivemind.core import layout
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
    "max_tokens": (True, 1, MAX_COUNT), "max_completion_tokens": (True, 1, MAX_COUNT), "n": (True, 1, 1), "top_k": (True, -1, None), "seed": (True, None, None),
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


class System(ConfigModel):

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

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        return _valid_env_name(value)

    _sendable_params = field_validator("params")(sendable_params)

    @model_validator(mode="after")
    def _no_secrets(self) -> "System":
        """Credentials in the model id, the URL, headers, bodies or any nested param are refused."""
        refuse_secrets({"model": self.model, "api_base": self.api_base, "params": self.params})
        return self

    @property
    def identity(self) -> str:
        """Stable id of what shapes the answers. The name and concurrency are not part of it."""
        blob = json.dumps(
            {"model": self.model, "api_base": self.api_base, "params": self.params},
            sort_keys=True, separators=(",", ":"),
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Scorer(ConfigModel):
    """A quality scorer (the `score` stage). Every scorer stores scores where higher is better.

    kind: judge (an LM judge through litellm), perplexity (answer log-probability under a local model),
    reward (a transformers sequence-classification reward model), relevance (cosine of answer and prompt
    embeddings), imported (scores brought in with `hivemind import`)."""

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
        kinds = {"judge", "perplexity", "reward", "relevance", "imported"}
        if value not in kinds:
            raise ValueError(f"must be one of {', '.join(sorted(kinds))}")
        return value

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        return _valid_env_name(value)

    @model_validator(mode="after")
    def _complete(self) -> "Scorer":
        refuse_secrets({"model": self.model, "api_base": self.api_base, "params": self.params})
        if self.kind in ("judge", "reward") and not self.model:
            raise ValueError(f"scorer {self.name!r} (kind {self.kind}) needs a model")
        if self.rubric is not None and self.kind != "judge":
            raise ValueError(f"scorer {self.name!r}: a rubric is for judges only")
        if self.rubric is not None and self.rubric not in RUBRICS:
            raise ValueError(f"scorer {self.name!r}: rubric must be one of {', '.join(RUBRICS)}")
        if self.pass_at is None and self.kind == "perplexity" and self.model is None:
            self.pass_at = DEFAULT_PASS_AT["perplexity"]   # calibrated for the bundled SmolLM2 only
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
DEFAULT_PASS_AT = {"perplexity": -3.25, "relevance": 0.15}


class DatasetSource(ConfigModel):
    """A Hugging Face dataset, loaded through `datasets`."""

    dataset: str
    field: str = "query"
    split: str = "train"
    subset: str | None = None
    id_field: str | None = None
    category_field: str | None = None


class Embedder(ConfigModel):
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

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        return _valid_env_name(value)

    @model_validator(mode="after")
    def _no_secrets(self) -> "Embedder":
        refuse_secrets({"model": self.model, "api_base": self.api_base})
        return self

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


class RunConfig(ConfigModel):

    name: str
    prompts: str | DatasetSource
    limit: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    seed: int = Field(default=0, ge=-2**62, le=2**62)      # stored and hashed: a 64-bit integer
    samples: int = Field(default=8, ge=1, le=MAX_COUNT)
    systems: list[System] = Field(min_length=1)
    embedder: Embedder = Field(default_factory=Embedder)
    scorers: list[Scorer] = Field(default_factory=list)
    near_duplicate_threshold: float = Field(default=0.9, gt=0, le=1)
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
        names = [scorer.name for scorer in self.scorers]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"scorer name {name!r} appears twice")
        return self

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

    def public_dict(self) -> dict[str, Any]:
        """The config as data, safe to publish: key *variable names* stay, values never enter it."""
        return self.model_dump(mode="json", exclude_none=True)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses what a config never needs and a hostile file uses: aliases that expand into
    a huge document (a "billion laughs" bomb), an alias inside its own anchor (a recursive structure),
    duplicate keys (the second silently won), and values a tag cannot build (`!!int abc`)."""

    MAX_VALUES = 100_000  # scalars and collections after expanding every alias; paper.yaml has ~1,000

    def __init__(self, stream):
        super().__init__(stream)
        self._open_anchors: set[str] = set()

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) and event.anchor in self._open_anchors:
            raise yaml.composer.ComposerError(None, None, f"alias *{event.anchor} is inside its own anchor "
                                              f"&{event.anchor} (a recursive structure)", event.start_mark)
        anchor = None if isinstance(event, yaml.AliasEvent) else getattr(event, "anchor", None)
        if anchor:
            self._open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._open_anchors.discard(anchor)

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key_node.value!r} appears twice (first on line {seen[key] + 1})",
                        key_node.start_mark)
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as err:  # a tag's constructor failing (int("abc"), a bad timestamp): name the line
            raise yaml.constructor.ConstructorError(None, None, f"cannot read this {node.tag.split(':')[-1]} "
                                                    f"value ({type(err).__name__})", node.start_mark) from None


def _expanded_size(node, memo: dict, limit: int) -> int:
    """Values in the document once every alias is expanded (aliases share nodes, so a memo keeps this linear)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a cycle (refused while composing) cannot recurse forever here either
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, memo, limit) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo, limit) + _expanded_size(v, memo, limit) for k, v in node.value)
    else:
        size = 1
    if size > limit:
        raise yaml.composer.ComposerError(None, None, f"expands to more than {limit:,} values through aliases "
                                          f"(*name); is it a YAML bomb?", node.start_mark)
    memo[key] = size
    return size


def load_yaml(path: Path, text: str):
    """Parse YAML text read from path: strict, one-line HivemindError naming the file and line."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, {}, _StrictLoader.MAX_VALUES)
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        raise _yaml_error(path, err) from None
    except RecursionError:
        line = getattr(loader, "line", None)
        where = f"{path}:{line + 1}" if isinstance(line, int) else str(path)
        raise HivemindError(f"{where}: malformed YAML: nested too deeply") from None
    finally:
        loader.dispose()


def _yaml_error(path: Path, err: yaml.YAMLError) -> HivemindError:
    mark = getattr(err, "problem_mark", None)
    where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
    problem = getattr(err, "problem", None) or str(err)
    return HivemindError(f"{where}: malformed YAML: {' '.join(str(problem).split())}")


def read_text(path: Path, what: str) -> str:
    """A UTF-8 text file (a BOM is dropped), or a one-line HivemindError saying why it cannot be read."""
    if path.is_dir():
        raise HivemindError(f"{path}: is a folder; expected a {what}")
    if not path.is_file():
        raise HivemindError(f"{path}: {what} not found")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise HivemindError(f"{path}: cannot read the {what} ({err.strerror})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise HivemindError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from None
    if "\0" in text:
        raise HivemindError(f"{path}:{text.count(chr(10), 0, text.index(chr(0))) + 1}: a NUL byte; "
                            f"is this a binary file? expected a {what}")
    return text


def _validation_error(path: Path, err: ValidationError) -> HivemindError:
    lines = []
    for item in err.errors():
        loc = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":   # a misspelt or misplaced key: say which one it might be
            lines.append(f"  {loc}: {unknown_setting(item['loc'], path)}")
            continue
        lines.append(f"  {loc}: {item['msg'].removeprefix('Value error, ')}")
    return HivemindError(f"{path}: invalid config:\n" + "\n".join(lines))


# Settings that belong under a system's `params:` (passed to the model), for "did you mean" on a system.
DECODING_PARAMS = ("temperature", "top_p", "min_p", "top_k", "max_tokens", "seed", "presence_penalty",
                   "frequency_penalty", "stop", "n")


def unknown_setting(loc: tuple, path: Path) -> str:
    """"unknown setting 'max_token' in systems[0] of FILE; did you mean 'max_tokens'?": the closest field
    name of the model the key sits in (difflib), or of the decoding params when the key sits in a system."""
    import difflib

    *where, key = loc
    model, place = RunConfig, []
    for part in where:
        if isinstance(part, int):
            place[-1] += f"[{part}]"
            continue
        place.append(str(part))
        model = _submodel(model, str(part))
    fields = list(model.model_fields) if model else []
    params = list(DECODING_PARAMS) if model is System else []
    text = f"unknown setting {str(key)!r} in {'.'.join(place) or 'the top level'} of {path}"
    if str(key) in params:
        return f"{text}; decoding settings go under `params:` (params: {{{key}: ...}})"
    close = difflib.get_close_matches(str(key), fields + params, n=1, cutoff=0.6)
    if close:
        under = " (under `params:`)" if close[0] in params and close[0] not in fields else ""
        return f"{text}; did you mean {close[0]!r}{under}?"
    return f"{text}; known settings: {', '.join(fields)}"


def _submodel(model, field: str):
    """The pydantic model a field of `model` holds (through lists and optionals), or None."""
    import typing

    info = model.model_fields.get(field) if model else None
    todo = [info.annotation] if info else []
    while todo:
        kind = todo.pop()
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return kind
        todo.extend(typing.get_args(kind))
    return None


def load_config(path: str | Path) -> RunConfig:
    path = Path(path)
    data = load_yaml(path, read_text(path, "config file"))
    if not isinstance(data, dict):
        raise HivemindError(f"{path}: a config must be a YAML mapping (name, prompts, samples, systems)")
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as err:
        raise _validation_error(path, err) from None
    if isinstance(config.prompts, str):
        config.prompts = str(_resolve_relative(config.prompts, path.parent))
    return config


def _resolve_relative(value: str, config_dir: Path) -> Path:
    """Relative prompt paths are read from the working directory, else beside the config file, else from
    the project checkout (for the packaged configs: `prompts/demo.jsonl`)."""
    candidate = Path(value)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    for base in (config_dir, Path(__file__).resolve().parents[2]):   # the checkout: hivemind/core/config.py
        if (base / candidate).exists():
            return base / candidate
    return candidate


def resolve_run(run: str | Path, results_dir: str | Path | None = None) -> RunConfig:
    """The one way every command reads RUN: a config file (`path/to/config.yaml`), a run folder
    (`results/demo`, `results/demo/`: its stored config, with the folder's parent as results folder), a run
    name under the results folder (`demo`), or a packaged config name (`demo`, `paper`)."""
    run_str = str(run)
    as_path = Path(run_str)
    base = layout.results_root(results_dir)
    if as_path.suffix in {".yaml", ".yml"} or as_path.is_file():
        config = load_config(as_path)
    elif ("/" in run_str or os.sep in run_str) and as_path.is_dir():
        return _run_folder_config(as_path)
    elif (base / run_str / RUN_CONFIG_NAME).is_file():
        config = load_config(base / run_str / RUN_CONFIG_NAME)
        config.results_dir = str(base)
    elif (as_path / RUN_CONFIG_NAME).is_file():       # a run folder in the working directory
        return _run_folder_config(as_path)
    elif (PACKAGED_CONFIGS / f"{run_str}.yaml").is_file():
        config = load_config(PACKAGED_CONFIGS / f"{run_str}.yaml")
    else:
        raise HivemindError(f"{run_str!r} is neither a config file, a packaged config "
                            f"({', '.join(p.stem for p in PACKAGED_CONFIGS.glob('*.yaml'))}), a run folder, "
                            f"nor a run under {base}/; `hivemind list` shows the runs there")
    if results_dir is not None:
        config.results_dir = str(results_dir)
    return config


def _run_folder_config(folder: Path) -> RunConfig:
    """A run named by its folder: the config stored there, the folder's parent as the results folder."""
    stored = folder / RUN_CONFIG_NAME
    if not stored.is_file():
        raise HivemindError(f"{folder}: not a run folder (no {RUN_CONFIG_NAME}); name a run folder under the "
                            f"results folder, a config file or a run name (`hivemind list` shows the runs)")
    config = load_config(stored)
    config.results_dir = str(folder.resolve().parent)
    if config.run_dir.resolve() != folder.resolve():
        raise HivemindError(f"{stored}: names run {config.name!r}, but its folder is {folder.name!r}; "
                            f"name the run by its config file instead")
    return config


def run_config_text(config: RunConfig) -> str:
    """The run folder's config.yaml: the public config (no secrets), without results_dir (where it lies)."""
    data = config.public_dict()
    data.pop("results_dir", None)
    return yaml.safe_dump(data, sort_keys=False)


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
        api_key(f"system {system.name!r}", system.model, system.api_base, system.api_key_env)

