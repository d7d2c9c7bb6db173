"""Run configuration: a YAML file validated with pydantic, and where a run's files live.

A *system* is a model plus its decoding settings; the same model under top-p and under min-p is two
systems. A system's identity is a hash of what changes its answers (model, api_base, params), so
editing params makes a new identity and old samples are never silently mixed with new ones.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hivemind import HivemindError

PACKAGED_CONFIGS = Path(__file__).parent / "configs"
RUN_CONFIG_NAME = "config.yaml"
STORE_NAME = "store.sqlite"
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"   # run and snapshot names: safe as folder names


# Keys whose values are credentials. `api_key_env` (and any *_env) names a variable and stays. Matched at
# the end of the key, so `max_tokens` is not taken for one.
SECRET_KEY = re.compile(r"(^|[_-])(api[_-]?key|key|token|secret|password|passwd|authori[sz]ation|bearer"
                        r"|credentials?|cookie)$", re.I)


def _secret_paths(value: Any, path: str):
    """Dotted paths of credential-looking keys anywhere inside nested dicts and lists."""
    if isinstance(value, dict):
        for key, inner in value.items():
            here = f"{path}.{key}"
            if SECRET_KEY.search(str(key)) and not str(key).lower().endswith("_env"):
                yield here
            yield from _secret_paths(inner, here)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _secret_paths(inner, f"{path}[{i}]")


class System(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    model: str = Field(min_length=1)
    api_base: str | None = None
    api_key_env: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    concurrency: int = Field(default=8, ge=1, le=1024)

    @field_validator("params")
    @classmethod
    def _no_secrets_in_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        for path in _secret_paths(params, "params"):
            raise ValueError(f"{path}: keys come only from the environment; use api_key_env")
        return params

    @property
    def identity(self) -> str:
        """Stable id of what shapes the answers. The name and concurrency are not part of it."""
        blob = json.dumps(
            {"model": self.model, "api_base": self.api_base, "params": self.params},
            sort_keys=True, separators=(",", ":"),
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Scorer(BaseModel):
    """A quality scorer (the `score` stage). Every scorer stores scores where higher is better.

    kind: judge (an LM judge through litellm), perplexity (answer log-probability under a local model),
    reward (a transformers sequence-classification reward model), relevance (cosine of answer and prompt
    embeddings), imported (scores brought in with `hivemind import`)."""
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    kind: str
    model: str | None = None
    api_base: str | None = None
    api_key_env: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    concurrency: int = Field(default=4, ge=1, le=1024)
    rubric: str | None = None            # judge: "1-5" or "1-10"
    pass_at: float | None = None         # quality gate: an answer passes when its score >= pass_at

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        kinds = {"judge", "perplexity", "reward", "relevance", "imported"}
        if value not in kinds:
            raise ValueError(f"must be one of {', '.join(sorted(kinds))}")
        return value

    @field_validator("params")
    @classmethod
    def _no_secrets_in_scorer_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        for path in _secret_paths(params, "params"):
            raise ValueError(f"{path}: keys come only from the environment; use api_key_env")
        return params

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
        return self


RUBRICS = ("1-5", "1-10")   # judge rubrics: hivemind/rubrics/absolute-<rubric>.txt

# Default quality gates (an answer passes when score >= pass_at), used when a scorer names none.
# perplexity, bundled SmolLM2 (mean log-probability per answer token, first 96 tokens), measured with
#   `python benchmarks/bench_score.py --calibrate --models 16 --prompts 3 --offset 200 --max-tokens 96`
#   on real AlpacaEval answers of 16 models: real min -3.26, 1% -3.21, median -1.96; the same answers'
#   words shuffled: max -4.21, 99% -4.32, median -6.35; random-vocabulary babble of the same length:
#   max -6.59, median -7.64. -4.0 passes every real answer and fails every control (48 of each).
# relevance, all-MiniLM-L6-v2 (answer-prompt cosine), `--calibrate-relevance --models 16 --prompts 12
#   --offset 300`: 192 real answers to their own prompt: min 0.174, 5% 0.333, median 0.736; the same
#   answers against another prompt: median 0.029, 95% 0.184, max 0.246. 0.15 passes every real answer
#   and 13.5% of off-topic ones (0.2: 98.4% and 2.1%); other embedders need their own calibration.
DEFAULT_PASS_AT = {"perplexity": -4.0, "relevance": 0.15}


class DatasetSource(BaseModel):
    """A Hugging Face dataset, loaded through `datasets`."""
    model_config = ConfigDict(extra="forbid")

    dataset: str
    field: str = "query"
    split: str = "train"
    subset: str | None = None
    id_field: str | None = None
    category_field: str | None = None


class Embedder(BaseModel):
    """`sentence-transformers` (a local model name or path) or `litellm` (an embedding API)."""
    model_config = ConfigDict(extra="forbid")

    provider: str = "sentence-transformers"
    model: str = DEFAULT_EMBEDDER
    api_base: str | None = None
    api_key_env: str | None = None
    batch_size: int = Field(default=64, ge=1)

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in {"sentence-transformers", "litellm"}:
            raise ValueError("must be 'sentence-transformers' or 'litellm'")
        return value

    @property
    def id(self) -> str:
        return f"{self.provider}:{self.model}"


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    prompts: str | DatasetSource
    limit: int | None = Field(default=None, ge=1)
    seed: int = 0
    samples: int = Field(default=8, ge=1)
    systems: list[System] = Field(min_length=1)
    embedder: Embedder = Field(default_factory=Embedder)
    scorers: list[Scorer] = Field(default_factory=list)
    near_duplicate_threshold: float = Field(default=0.9, gt=0, le=1)
    max_cost: float | None = Field(default=None, gt=0)
    max_attempts: int = Field(default=8, ge=1, le=50)     # per sample, first try included
    retry_base_delay: float = Field(default=1.0, ge=0)     # seconds; doubles per attempt, full jitter
    retry_max_delay: float = Field(default=60.0, ge=0)
    request_timeout: float = Field(default=120.0, gt=0)    # seconds per request
    results_dir: str = "results"

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


def _yaml_error(path: Path, err: yaml.YAMLError) -> HivemindError:
    mark = getattr(err, "problem_mark", None)
    where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
    problem = getattr(err, "problem", None) or str(err)
    return HivemindError(f"{where}: malformed YAML: {problem}")


def _validation_error(path: Path, err: ValidationError) -> HivemindError:
    lines = []
    for item in err.errors():
        loc = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {loc}: {item['msg']}")
    return HivemindError(f"{path}: invalid config:\n" + "\n".join(lines))


def load_config(path: str | Path) -> RunConfig:
    path = Path(path)
    if not path.is_file():
        raise HivemindError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise _yaml_error(path, err) from None
    except UnicodeDecodeError as err:
        raise HivemindError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
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
    for base in (config_dir, Path(__file__).resolve().parents[1]):
        if (base / candidate).exists():
            return base / candidate
    return candidate


def resolve_run(run: str | Path, results_dir: str | Path | None = None) -> RunConfig:
    """RUN is a config file, a packaged config name (`demo`), or the name of a run under results/."""
    run_str = str(run)
    as_path = Path(run_str)
    if as_path.suffix in {".yaml", ".yml"} or as_path.is_file():
        config = load_config(as_path)
    else:
        base = Path(results_dir) if results_dir else Path(os.environ.get("HIVEMIND_RESULTS", "results"))
        stored = base / run_str / RUN_CONFIG_NAME
        packaged = PACKAGED_CONFIGS / f"{run_str}.yaml"
        if stored.is_file():
            config = load_config(stored)
            config.results_dir = str(base)
        elif packaged.is_file():
            config = load_config(packaged)
        else:
            raise HivemindError(f"{run_str!r} is neither a config file, a packaged config "
                                f"({', '.join(p.stem for p in PACKAGED_CONFIGS.glob('*.yaml'))}), "
                                f"nor a run under {base}/")
    if results_dir is not None:
        config.results_dir = str(results_dir)
    return config


def save_run_config(config: RunConfig, folder: Path | None = None) -> Path:
    """Keep a copy of the config in the run folder, so stages can be named by run name alone."""
    folder = folder or config.run_dir
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / RUN_CONFIG_NAME
    data = config.public_dict()
    data.pop("results_dir", None)
    return write_text_atomic(target, yaml.safe_dump(data, sort_keys=False))


def write_text_atomic(path: Path, text: str) -> Path:
    """Write beside the target, then rename: readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: concurrent writers never collide
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


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

