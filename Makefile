# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Offline by design: nothing downloads models or datasets at run time; litellm uses its bundled prices.
export HF_HUB_OFFLINE := 1
export LITELLM_LOCAL_MODEL_COST_MAP := True
export TOKENIZERS_PARALLELISM := false
# llama-cpp-python compiles from source (about 5 minutes on 2 cores)
export CMAKE_BUILD_PARALLEL_LEVEL := 2

.PHONY: install chromium demo test bench clean

install: $(STAMP) chromium

# Headless Chromium for the answer browser's checks (tests/test_browser.py): Debian's own packages (never a
# browser downloaded by a test tool). `apt-get update` only when the plain install fails; a machine without
# apt-get (or without the right to use it) gets a warning and those tests skip, saying why.
APT_CHROMIUM := apt-get install -y -q --no-install-recommends chromium chromium-driver
chromium:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif command -v apt-get >/dev/null; then \
		export DEBIAN_FRONTEND=noninteractive; $(APT_CHROMIUM) || { apt-get update -q && $(APT_CHROMIUM); } || \
			echo "warning: could not install chromium with apt-get (not root?); tests/test_browser.py will skip"; \
	else echo "warning: no apt-get: install chromium and chromedriver at /usr/bin for tests/test_browser.py"; fi

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel
	# The CPU build of torch from local disk; any other route pulls a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	# every extra and the test tools; a user's light install is `pip install hivemind-bench` (pyproject.toml)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/hivemind run demo

test: install
	$(VENV)/bin/lint-imports    # the layering contracts in pyproject.toml
	# the documentation site (docs/, MkDocs Material: the [docs] extra) is built with --strict by tests/test_docs.py
	$(VENV)/bin/pytest -q -rs

bench: install
	for script in benchmarks/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) results/demo
