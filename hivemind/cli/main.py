"""The `hivemind` command: parse, call one function, print. Errors print their message, no traceback.

This module builds the parser and runs a command; the commands themselves, each parser next to its handler,
are in stages.py (the pipeline), runs.py (whole runs) and studies.py, and the options they share in options.py."""
from __future__ import annotations

import argparse
import os
import sys

# Before litellm is imported anywhere: its price map is bundled; fetching it costs seconds offline.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from hivemind import __version__  # noqa: E402
from hivemind.cli import runs, stages, studies  # noqa: E402
from hivemind.cli.options import Parser  # noqa: E402
from hivemind.core.errors import HivemindError  # noqa: E402
from hivemind.core.secrets import redact  # noqa: E402

DESCRIPTION = """\
hivemind measures how alike language models answer open-ended questions (the "Artificial Hivemind"
study, Jiang et al. 2025). It asks every configured model the same prompts many times, embeds the answers,
and reports how much each model repeats itself and how much different models say the same thing, with a
quality-gated diversity ranking, figures, a report and publishable snapshots.

Start with `hivemind run demo` (no API key needed: bundled local models), then `hivemind list`.
RUN, wherever a command takes one, is a run name under results/, a run folder (results/demo), a config
file (my.yaml) or a packaged config (demo, paper)."""

EPILOG = """\
typical session:
  hivemind run demo                 collect, embed, score, analyze and report the demo run
  hivemind list                     every run under results/, its state and the next command
  hivemind report demo              re-render the report of a run
  hivemind snapshot create demo     an immutable, hashed copy (a Hugging Face dataset folder)
`hivemind COMMAND --help` explains each command."""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="hivemind", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"hivemind {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands", description="what to do (hivemind COMMAND --help for more)",
                                help="one of the commands below")
    # `hivemind --help` lists the commands in the order they are added here, the order it has always listed
    # them in, which interleaves the three groups.
    stages.add_commands(sub, "run")
    runs.add_commands(sub, "list")
    stages.add_commands(sub, "collect", "embed", "score", "analyze", "report", "serve-local")
    studies.add_commands(sub, "agreement", "calibrate", "categories", "classify", "clusters")
    runs.add_commands(sub, "import", "leaderboard", "snapshot", "export")
    studies.add_commands(sub, "reproduce")
    runs.add_commands(sub, "merge")
    studies.add_commands(sub, "plan", "validate")
    runs.add_commands(sub, "site", "view")
    return parser


QUIET_ENV = {
    "TQDM_DISABLE": "1",                       # every tqdm bar without an explicit `disable=` (tqdm >= 4.66)
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",       # huggingface_hub downloads and cache reads
    "TRANSFORMERS_VERBOSITY": "error",         # transformers' loading notices and its own bars
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "DATASETS_VERBOSITY": "error",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
}


def quiet_libraries() -> None:
    """-q: the progress bars and logs of model loading (sentence-transformers, huggingface, transformers,
    datasets, llama.cpp) are switched off through their environment variables, before they are imported
    (every command imports them lazily), and again by API for anything imported already: transformers decides
    at import whether its bars (the "Loading weights" bar of every model load) are on, so a process that
    imported it before -q ran (a notebook, a script calling hivemind.cli.main) needs its own switch."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    import logging

    for name in ("sentence_transformers", "transformers", "huggingface_hub", "datasets", "llama_cpp"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "quiet", False):
        quiet_libraries()
    try:
        message = args.handler(args)
    except HivemindError as err:
        print(f"error: {redact(str(err))}", file=sys.stderr)  # no key value is ever printed
        return 1
    except OSError as err:
        # A file-system failure no stage diagnosed itself (a full disk, a folder that vanished): say which file
        # and why in one line, never a traceback. Everything committed to the store so far is kept.
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {redact(where + (err.strerror or str(err)))} (everything stored so far is kept)",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        from hivemind.pipeline import Interrupted

        if isinstance(err, Interrupted):
            print(f"stopped by {err.name}; everything stored so far is kept, local servers this command "
                  f"started are stopped; run the same command again to resume", file=sys.stderr)
            return err.exit_code
        print("interrupted; everything stored so far is kept", file=sys.stderr)
        return 130
    if message:
        print(redact(message))
    return 0


if __name__ == "__main__":
    sys.exit(main())
