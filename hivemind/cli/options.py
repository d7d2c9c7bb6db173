"""What the commands' parsers share, defined once: the checked argument types, the flags every command takes
(-q, --wait), the options several commands take (RUN, --results, --retry-errors, the engine options) and
`add_command`, which makes a command's parser. A command's parser then reads as the list of its options."""
from __future__ import annotations

import argparse
import math
import re
import sys

RUN_HELP = "the run: a run name under results/, a run folder, a config file, or a packaged config (demo, paper)"
RESULTS_HELP = "the results folder (default: $HIVEMIND_RESULTS, else results/)"
RETRY_HELP = "also re-send samples stored as permanent errors (after fixing the config or server)"


# Command-line values, checked once as argparse reads them (`type=`), so a bad one is a usage error naming
# the flag before anything runs. float() alone takes "nan" and "inf"; int() takes 0 and -3.

def finite_float(text: str) -> float:
    """A finite number (not nan or inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text!r}")
    return value


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {low} or more, not {value}")
        return value
    parse.__name__ = f"int >= {low}"   # argparse names the type in some messages
    return parse


positive_int = _int_at_least(1)
non_negative_int = _int_at_least(0)


def safe_url(text: str) -> str:
    """A URL without credentials (user:password@, a key in the query): keys come only from the environment,
    and a URL is stored (a classifier's name) and printed."""
    from hivemind.core.secrets import url_problem

    problem = url_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"the URL {problem} (nothing was written)")
    return text


class AppendOnce(argparse.Action):
    """A repeatable flag (`--system A --system B`): a value given twice is used once, in first-given order."""

    def __call__(self, parser, namespace, value, option_string=None):
        values = list(getattr(namespace, self.dest, None) or [])
        if value not in values:
            values.append(value)
        setattr(namespace, self.dest, values)


# A command's parser -------------------------------------------------------------------------------------

class Parser(argparse.ArgumentParser):
    """argparse with a did-you-mean for a misspelt command or action (`hivemind reprot` -> 'report'), in one
    line. Python 3.14's own `suggest_on_error` is used where it exists; this does the same before it."""

    def __init__(self, *args, **kwargs):
        if _HAS_SUGGEST:
            kwargs.setdefault("suggest_on_error", True)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        line = invalid_choice_line(message)
        if line:
            self.exit(2, f"{self.prog}: error: {line}\n")
        super().error(message)


_HAS_SUGGEST = sys.version_info >= (3, 14)
_INVALID_CHOICE = re.compile(r"argument (?P<arg>[^:]+): invalid choice: (?P<given>.+?) \(choose from (?P<choices>.*)\)$")


def invalid_choice_line(message: str) -> str | None:
    """"invalid choice 'reprot'; did you mean 'report'? ..." for argparse's invalid-choice message (which
    quotes its values up to Python 3.11, and not from 3.12), or None for any other message."""
    import difflib

    match = _INVALID_CHOICE.match(message)
    if not match:
        return None
    unquote = lambda text: text.strip().strip("'\"")
    given = unquote(match["given"])
    choices = [unquote(c) for c in match["choices"].split(",")]
    close = difflib.get_close_matches(given, choices, n=1, cutoff=0.6)
    guess = f"did you mean {close[0]!r}?" if close else f"choose from {', '.join(choices)}"
    return f"{match['arg']}: invalid choice {given!r}; {guess} (--help lists them)"


def add_command(sub, name: str, handler, help_text: str, writes_run: bool = False,
                nested: bool = False) -> argparse.ArgumentParser:
    """A command's parser on `sub` (the subparsers of `hivemind` or, nested=True, of a command with actions,
    `leaderboard update`), its handler, and the flags every command takes: -q, and --wait when it writes a run.
    The description is the help line as a sentence."""
    p = sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
    p.set_defaults(handler=handler)
    add_quiet(p, nested)
    if writes_run:
        add_wait(p, nested)
    return p


# A nested action (`leaderboard update`) takes -q and --wait too; its defaults are suppressed so that a flag
# given before the action (`leaderboard --wait update`) is not overwritten by the action's.

def _nested_default(nested: bool) -> dict:
    return {"default": argparse.SUPPRESS} if nested else {}


def add_quiet(p, nested: bool = False) -> None:
    p.add_argument("-q", "--quiet", action="store_true", **_nested_default(nested),
                   help="no progress bars (also the model-loading bars of transformers/huggingface)")


def add_wait(p, nested: bool = False) -> None:
    p.add_argument("--wait", action="store_true", **_nested_default(nested),
                   help="if another process holds the run's lock, wait for it instead of refusing")


def add_run(p) -> None:
    """The RUN positional, resolved by hivemind.core.config_files.resolve_run."""
    p.add_argument("run", help=RUN_HELP)


def add_results(p, help: str = RESULTS_HELP, **kwargs) -> None:
    p.add_argument("--results", help=help, **kwargs)


def add_retry_errors(p) -> None:
    p.add_argument("--retry-errors", action="store_true", help=RETRY_HELP)


def add_engine_options(p, workers: bool = True) -> None:
    """--engine ray (hivemind.engines.ray): the stage on a Ray cluster, the same results."""
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="ray: run this stage on a Ray cluster (API judges and API embedders stay local)")
    p.add_argument("--ray-address", type=safe_url, help="an existing Ray cluster (HOST:PORT, ray://HOST:PORT or auto); "
                   "default: start a local one")
    if workers:
        p.add_argument("--workers", type=positive_int, help="with --engine ray: CPU actors (default: one per CPU)")
        p.add_argument("--gpus", type=non_negative_int, help="with --engine ray: GPU actors, one GPU each (default: every "
                       "GPU of the cluster for embedding, none for scoring)")


def engine_options(args, workers: bool = True) -> dict:
    """The engine options as keyword arguments of a stage (pipeline.embed(..., **engine_options(args)))."""
    options = {"engine": args.engine, "ray_address": args.ray_address}
    if workers:
        options.update(workers=args.workers, gpus=args.gpus)
    return options
