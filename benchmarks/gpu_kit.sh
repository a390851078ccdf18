#!/usr/bin/env bash
# Prepare .gpu_kit/ (git-ignored) for a one-off check on a lent GPU machine that has no network.
#
# That machine's image has Python + torch (CUDA) + numpy + einops + scikit-learn + sentence-transformers
# (and an older transformers); its Python version is not known in advance. This script puts next to the
# checkout, for the lead to carry there (`carry: [".gpu_kit"]`):
#   .gpu_kit/wheels/   the wheels anchors imports for the tiny models, the local rollout engine, the white-box
#                      methods (TransformerLens bridge) and pytest: pure-Python / abi3 wheels once, and the few
#                      compiled ones for CPython 3.10-3.13 (installed there only when the image lacks them);
#   .gpu_kit/cache/    ANCHORS_CACHE with the tiny test models (built here, so both machines use the same weights);
#   .gpu_kit/smollm2-135m-config/   SmolLM2-135M's config and tokenizer, no weights: gpu_check.py's throughput
#                      model is built from it with random weights on the device;
#   .gpu_kit/stubs/    stand-in `datasets` and `pandas` (see below), each used only if the image lacks it.
# Then run benchmarks/gpu_install.sh there (its header has the one command line for the whole check).
#
# Usage: bash benchmarks/gpu_kit.sh   (needs PyPI; PYTHON defaults to the shared venv's python)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-/work/main/.venv/bin/python}
KIT=.gpu_kit
# site/ and env.sh are made on the device by gpu_install.sh: never carry a local install.
rm -rf "$KIT/wheels" "$KIT/stubs" "$KIT/smollm2-135m-config" "$KIT/site" "$KIT/env.sh"
mkdir -p "$KIT/wheels" "$KIT/stubs" "$KIT/cache"

# --- wheels ------------------------------------------------------------------------------------------------
# Installed on the device over whatever the image has (versions we test with; pure Python or abi3, one wheel
# for every CPython). The closure was found by importing the three integration test modules, booting the
# bridge and running gpu_check.py with `sys.modules` diffed against the image's packages.
ALWAYS=(
  transformers==5.23.0 transformer-lens==4.3.0 huggingface-hub==2.4.0 httpx2==2.16.2 httpcore2==2.16.2
  truststore h11 anyio idna sniffio certifi tokenizers==0.23.3 safetensors==0.8.0 accelerate==1.15.0 psutil
  jaxtyping==0.3.11 wadler-lindig typeguard beartype fancy-einsum typing-extensions rich markdown-it-py mdurl pygments
  pytest==9.2.0 pluggy iniconfig packaging pytest-timeout filelock fsspec tqdm jinja2 exceptiongroup
  pydantic==2.14.4 annotated-types typing-inspection
)
# Compiled per CPython version: installed on the device only when the image lacks the module (gpu_install.sh).
PER_PYTHON=(pydantic-core==2.50.5 regex pyyaml markupsafe)
# Not carried: pandas and datasets/pyarrow (see the stand-ins below).

download() {  # download [pip download args...]: binary wheels only, no dependencies (the lists above are the closure)
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --dest "$KIT/wheels" "$@"
}
download "${ALWAYS[@]}"
for version in 3.10 3.11 3.12 3.13; do
  download --python-version "$version" --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 --implementation cp "${PER_PYTHON[@]}"
done
# pytest reads its config with tomli on CPython 3.10 only.
download --python-version 3.10 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux_2_28_x86_64 --implementation cp tomli

# --- stand-ins for `datasets` and `pandas` ----------------------------------------------------------------------
# transformer_lens 4.3.0 imports `datasets` (→ pyarrow, ~40 MB per Python version) and `pandas` (~13 MB per
# Python version) at import time, only to name types in signatures: too big to carry for every CPython, and
# nothing anchors' white-box methods run touches them. These stand-ins are for the GPU check ONLY (never part
# of the anchors package); gpu_install.sh puts each on the path only when the image lacks the real library, and
# using one for anything raises. (The tests that build pandas tables are deselected there: `-k "not table"`.)
stand_in() {  # stand_in FILE CLASS...: a module whose classes refuse to be instantiated
  local file=$1; shift
  { echo '"""Stand-in on the offline GPU check machine ONLY (benchmarks/gpu_kit.sh). Not the real library."""'
    echo 'STAND_IN = True'
    for cls in "$@"; do
      printf '\n\nclass %s:\n    def __init__(self, *args, **kwargs):\n        raise RuntimeError("stand-in from .gpu_kit/stubs: the real library is not installed here")\n' "$cls"
    done; } > "$file"
}
mkdir -p "$KIT/stubs/datasets/datasets" "$KIT/stubs/pandas/pandas"
stand_in "$KIT/stubs/datasets/datasets/arrow_dataset.py" Dataset
stand_in "$KIT/stubs/datasets/datasets/iterable_dataset.py" IterableDataset
cat > "$KIT/stubs/datasets/datasets/load.py" <<'PY'
"""Stand-in on the offline GPU check machine ONLY (benchmarks/gpu_kit.sh). Not the real library."""


def load_dataset(*args, **kwargs):
    raise RuntimeError("stand-in `datasets` from .gpu_kit/stubs: the real library is not installed here")
PY
stand_in "$KIT/stubs/datasets/datasets/__init__.py"
cat >> "$KIT/stubs/datasets/datasets/__init__.py" <<'PY'
from datasets.arrow_dataset import Dataset  # noqa: E402
from datasets.iterable_dataset import IterableDataset  # noqa: E402
from datasets.load import load_dataset  # noqa: E402
PY
stand_in "$KIT/stubs/pandas/pandas/__init__.py" DataFrame Series

# --- models: tiny test models (built by anchors itself) and SmolLM2's shape without weights ------------------
PYTHONPATH=src ANCHORS_CACHE="$KIT/cache" "$PYTHON" -c \
  "from anchors.models import build_tiny_model; [print(build_tiny_model(n)) for n in ('tiny-qwen2', 'tiny-llama')]"
# SmolLM2's converted folder from your usual cache (converted from the bundled GGUF there if not yet done).
SMOL=$(PYTHONPATH=src "$PYTHON" -c "from anchors.models.loading import resolve_source; print(resolve_source('smollm2-135m').folder)")
mkdir -p "$KIT/smollm2-135m-config"
for file in config.json generation_config.json tokenizer.json tokenizer_config.json chat_template.jinja; do
  [ -f "$SMOL/$file" ] && cp "$SMOL/$file" "$KIT/smollm2-135m-config/"
done

ls "$KIT/wheels" | wc -l | xargs echo "wheels:"
du -sh "$KIT/wheels" "$KIT/cache" "$KIT/smollm2-135m-config"; du -sh "$KIT"
