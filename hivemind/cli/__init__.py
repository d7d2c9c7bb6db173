"""The `hivemind` command (entry point `hivemind.cli:main`; `python -m hivemind.cli` runs it too)."""
from hivemind.cli.main import QUIET_ENV, build_parser, main, quiet_libraries  # noqa: F401
