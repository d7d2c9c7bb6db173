"""The README and the documentation site stay true to the repository.

- `mkdocs build --strict` passes on docs/mkdocs/mkdocs.yml: every page is in the nav, every link between pages
  and every anchor resolves (the config's `validation:` makes each a warning, --strict a failure), and the
  built pages load nothing from the network (no web fonts, no remote scripts or stylesheets).
- Every relative link and image in README.md names a file of the repository, and every anchor a heading.
- The README's first screen holds the front door: the picture and `make demo` / `make test` come before the
  first section.
- Every `hivemind ...` command line shown in the README and in docs/usage.md parses with today's CLI, and the
  README's API config passes `hivemind plan` with the figures the README quotes.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from hivemind.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MKDOCS_CONFIG = DOCS / "mkdocs" / "mkdocs.yml"
FRONT_DOOR_LINES = 30      # lines before the first section: what it is, the picture, make demo / make test

LINK = re.compile(r"\]\(([^)\s]+)\)")                 # [text](target)
IMAGE_SRC = re.compile(r"<img\s[^>]*src=\"([^\"]+)\"")
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$", re.M)


def slug(heading: str) -> str:
    """GitHub's (and MkDocs' toc) anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    without_code = FENCE.sub("", markdown)
    return {slug(h) for h in HEADING.findall(without_code)}


def relative_targets(markdown: str) -> list[str]:
    text = FENCE.sub("", markdown)
    found = LINK.findall(text) + IMAGE_SRC.findall(text)
    return [t for t in found if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]   # http:, https:, mailto: ...


def test_mkdocs_builds_strict_and_offline(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(MKDOCS_CONFIG),
                           "-d", str(site)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    pages = sorted(site.rglob("*.html"))
    assert (site / "index.html").exists() and (site / "metrics" / "index.html").exists()
    assert not (site / "mkdocs").exists(), "the config folder leaked into the site"
    remote = re.compile(r"<(?:script|link|img)\b[^>]*\b(?:src|href)=\"(?:https?:)?//[^\"]*\"")
    loads = {str(p.relative_to(site)): remote.findall(p.read_text(encoding="utf-8")) for p in pages}
    assert not {p: hits for p, hits in loads.items() if hits}, "a page loads something from the network"


def test_every_docs_page_is_in_the_site_source():
    """Pages written beside the README (docs/*.md) are what the site builds: none hides in another folder."""
    assert (MKDOCS_CONFIG.parent / "..").resolve() == DOCS.resolve()
    config = MKDOCS_CONFIG.read_text(encoding="utf-8")
    assert re.search(r"^docs_dir:\s*\.\.\s*$", config, re.M)
    for page in DOCS.glob("*.md"):
        assert f": {page.name}" in config, f"{page.name} is not in the nav of {MKDOCS_CONFIG.name}"


def test_readme_links_resolve():
    text = README.read_text(encoding="utf-8")
    targets = relative_targets(text)
    assert any(t.startswith("docs/") for t in targets), "the README links into docs/"
    broken = []
    for target in targets:
        path, _, fragment = target.partition("#")
        file = ROOT / path if path else README
        if not file.is_file():
            broken.append(f"{target}: no file {path}")
        elif fragment and file.suffix == ".md" and fragment not in anchors(file.read_text(encoding="utf-8")):
            broken.append(f"{target}: no heading #{fragment} in {path or 'README.md'}")
    assert not broken, "README.md links that do not resolve:\n" + "\n".join(broken)


def test_readme_front_door_fits_one_screen():
    lines = README.read_text(encoding="utf-8").splitlines()
    first_section = next(i for i, line in enumerate(lines) if line.startswith("## "))
    assert first_section <= FRONT_DOOR_LINES, f"{first_section} lines before the first section"
    top = "\n".join(lines[:first_section])
    for needed in ("docs/img/noveltybench_matrix.png", "make demo", "make test"):
        assert needed in top, f"{needed!r} is not on the README's first screen"
    sections = [line[3:] for line in lines if line.startswith("## ")]
    for needed in ("Your own API models", "Importing generations", "Reading the results", "Publishing",
                   "Real models"):
        assert needed in sections, f"the README has no section {needed!r}"


def command_lines(markdown: str) -> list[str]:
    """Each `hivemind ...` command in the file's shell code blocks (comments cut, `&&` chains split)."""
    commands = []
    for language, body in FENCE.findall(markdown):
        if language not in ("bash", "sh", ""):
            continue
        for line in body.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("hivemind "):
                    commands.append(part)
    return commands


@pytest.mark.parametrize("page", ["README.md", "docs/usage.md"])
def test_shown_commands_parse(page):
    commands = command_lines((ROOT / page).read_text(encoding="utf-8"))
    assert len(commands) >= 5
    parser = build_parser()
    wrong = []
    for command in commands:
        try:
            parser.parse_args(shlex.split(command)[1:])
        except SystemExit:
            wrong.append(command)
    assert not wrong, f"{page} shows commands today's CLI refuses:\n" + "\n".join(wrong)


def test_readme_api_config_plans_as_quoted(tmp_path):
    """The README's own-models config is valid and `hivemind plan` prints the figures the README quotes."""
    text = README.read_text(encoding="utf-8")
    config = next(body for language, body in FENCE.findall(text) if language == "yaml" and "systems:" in body)
    quoted = re.search(r"hivemind plan my\.yaml\s+# no request sent: "
                       r"([\d,]+) answers, ([\d,]+) \+ ([\d,]+) tokens", text)
    assert quoted, "the README no longer quotes the plan's figures"
    answers, tokens_in, tokens_out = quoted.groups()
    (tmp_path / "my.yaml").write_text(config, encoding="utf-8")
    env = {**os.environ, "HIVEMIND_RESULTS": str(tmp_path / "results"), "HF_HUB_OFFLINE": "1",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(ROOT)}
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):     # planning needs no key
        env.pop(key, None)
    done = subprocess.run([sys.executable, "-m", "hivemind.cli", "plan", "my.yaml"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"= {answers} answers" in done.stdout
    assert f"tokens: {tokens_in} in, {tokens_out} out" in done.stdout
    cost = next(line for line in done.stdout.splitlines() if line.startswith("cost:"))
    assert "unpriced" not in cost, f"the README's example models have no litellm price: {cost}"
    assert not (tmp_path / "results").exists(), "plan wrote a results folder"
