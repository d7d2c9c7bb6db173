"""Config files: YAML read strictly (duplicate keys, anchors that expand too far and unknown settings refused,
each error naming the file and line), validated into hivemind.core.config's models, and RUN resolved the one
way every command reads it (a config file, a run folder, a run name, a packaged config)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from hivemind.core import config_params, layout
from hivemind.core.config import PACKAGED_CONFIGS, RUN_CONFIG_NAME, RunConfig, System
from hivemind.core.errors import HivemindError


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
DECODING_PARAMS = config_params.DECODING_PARAMS


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
    warn_once([f"{path}: {line}" for line in config.param_warnings()])
    return config


_WARNED: set[str] = set()


def warn_once(lines: list[str]) -> None:
    """Print each warning to stderr once per process: a command may read the same config more than once."""
    for line in lines:
        if line not in _WARNED:
            _WARNED.add(line)
            print(f"warning: {line}", file=sys.stderr)


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
        raise HivemindError(unknown_run(run_str, base))
    if results_dir is not None:
        config.results_dir = str(results_dir)
    return config


def unknown_run(run: str, base: Path) -> str:
    """"no run 'dmeo' under results/ ...; did you mean 'demo'?": the closest run name under the results
    folder or packaged config name (difflib), so a typo is one line with its fix, not a list to scan."""
    import difflib

    packaged = sorted(p.stem for p in PACKAGED_CONFIGS.glob("*.yaml"))
    runs = sorted(p.name for p in base.iterdir() if (p / RUN_CONFIG_NAME).is_file()) if base.is_dir() else []
    close = difflib.get_close_matches(run, runs + [n for n in packaged if n not in runs], n=1, cutoff=0.6)
    guess = f"did you mean {close[0]!r}? " if close else ""
    return (f"no run {run!r}: it is not a config file, a packaged config ({', '.join(packaged)}), a run folder "
            f"or a run under {base}/; {guess}`hivemind list` shows the runs there")


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
