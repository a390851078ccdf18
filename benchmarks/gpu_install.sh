#!/usr/bin/env bash
# Install the offline kit made by benchmarks/gpu_kit.sh on the lent GPU machine (no network there), and write
# .gpu_kit/env.sh, which puts src/, .gpu_kit/site (and, for `datasets` / `pandas` the image lacks, the stand-ins
# in .gpu_kit/stubs) on PYTHONPATH, points ANCHORS_CACHE at the carried tiny models and sets GPU_PYTHON.
#
# The whole device check, as one command line (carry: .gpu_kit; run from the repository root; logs in $OUT):
#
#   bash benchmarks/gpu_install.sh > $OUT/install.log 2>&1; tail -n 22 $OUT/install.log; . .gpu_kit/env.sh && ANCHORS_TEST_DEVICE=cuda timeout 210 $GPU_PYTHON -m pytest -q -x -p no:cacheprovider -m "not slow" -k "not table" tests/integration/test_local_engine.py tests/integration/test_whitebox.py tests/integration/test_models.py > $OUT/pytest_cuda.log 2>&1; echo "pytest rc=$?"; tail -n 15 $OUT/pytest_cuda.log; timeout 240 $GPU_PYTHON benchmarks/gpu_check.py --device cuda --time-budget 150 --out $OUT/gpu_check.json > $OUT/gpu_check.log 2>&1; echo "gpu_check rc=$?"; grep -v "it/s\]" $OUT/gpu_check.log | tail -n 45
#
# (GPU_PYTHON, set by env.sh, is the interpreter the kit was installed for: `python`, else `python3`, or $PYTHON.
# `-m "not slow"`: the bundled SmolLM2 is not carried; `-k "not table"`: pandas tables, where pandas may be a stand-in.
# Timeouts: pytest ~1-2 min and gpu_check ~2.5 min expected; each is cut off before the device time runs out.)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-$(command -v python || command -v python3)}
KIT=$ROOT/.gpu_kit
[ -d "$KIT/wheels" ] || { echo "no $KIT/wheels: run benchmarks/gpu_kit.sh where there is a network, and carry .gpu_kit"; exit 2; }
rm -rf "$KIT/site"
mkdir -p "$KIT/site"
echo "python: $PYTHON ($("$PYTHON" -c 'import sys; print(sys.version.split()[0])'))"

# Which wheels to install: every pure/abi3 wheel (the versions anchors is tested with, over the image's), and
# the compiled per-Python ones only where the image lacks the module. pydantic goes with its exact
# pydantic-core, so the image's pair is kept when it has one.
NAMES=$("$PYTHON" - "$KIT/wheels" <<'PY'
import importlib.util, os, sys
wheels = sorted(os.listdir(sys.argv[1]))
dist = lambda f: f.split("-")[0].lower().replace("_", "-")
if_missing = {"pydantic": {"pydantic", "pydantic-core", "annotated-types", "typing-inspection"},
              "regex": {"regex"}, "yaml": {"pyyaml"}, "markupsafe": {"markupsafe"},
              "tomli": {"tomli"}, "exceptiongroup": {"exceptiongroup"}}
skip = set()
for module, dists in if_missing.items():
    present = importlib.util.find_spec(module) is not None
    if module in ("tomli", "exceptiongroup"):
        present = present or sys.version_info >= (3, 11)  # in the standard library from 3.11
    if present:
        skip |= dists
    print(f"  {module}: {'from the image' if present else 'from the kit'}", file=sys.stderr)
print(" ".join(sorted({dist(f) for f in wheels if f.endswith(".whl")} - skip)))
PY
)
echo "installing into .gpu_kit/site: $NAMES"
if "$PYTHON" -m pip --version > /dev/null 2>&1 && [ -z "${GPU_KIT_NO_PIP:-}" ]; then
  # shellcheck disable=SC2086
  "$PYTHON" -m pip install -q --no-index --no-deps --disable-pip-version-check --no-compile \
    --find-links "$KIT/wheels" --target "$KIT/site" $NAMES || { echo "pip install failed"; exit 3; }
else  # no pip in the image: unpack the wheels ourselves (a wheel is a zip of the installed files)
  # shellcheck disable=SC2086
  "$PYTHON" - "$KIT/wheels" "$KIT/site" $NAMES <<'PY' || { echo "unpacking the wheels failed"; exit 3; }
import os, shutil, sys, zipfile
wheels, site, names = sys.argv[1], sys.argv[2], set(sys.argv[3:])
sys.path.insert(0, os.path.join(wheels, next(f for f in os.listdir(wheels) if f.startswith("packaging-"))))
from packaging.tags import sys_tags
from packaging.utils import parse_wheel_filename
rank = {tag: i for i, tag in enumerate(sys_tags())}
best = {}
for file in os.listdir(wheels):
    name, version, _, tags = parse_wheel_filename(file)
    score = min((rank[t] for t in tags if t in rank), default=None)
    if name in names and score is not None and (name not in best or (version, -score) > best[name][:2]):
        best[name] = (version, -score, file)
missing = names - set(best)
if missing:
    sys.exit(f"no wheel for this Python: {sorted(missing)}")
for name, (_, _, file) in sorted(best.items()):
    with zipfile.ZipFile(os.path.join(wheels, file)) as archive:
        archive.extractall(site)
for data in [d for d in os.listdir(site) if d.endswith(".data")]:  # purelib/platlib parts of a wheel
    for part in ("purelib", "platlib"):
        source = os.path.join(site, data, part)
        if os.path.isdir(source):
            shutil.copytree(source, site, dirs_exist_ok=True)
    shutil.rmtree(os.path.join(site, data))
print(f"unpacked {len(best)} wheels")
PY
fi

EXTRA=""
for module in datasets pandas; do
  if ! "$PYTHON" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$module') is None)"; then
    EXTRA="$EXTRA:$KIT/stubs/$module"
    echo "$module: not in the image; the stand-in from .gpu_kit/stubs/$module is used (GPU check only)"
  fi
done
cat > "$KIT/env.sh" <<SH
# written by benchmarks/gpu_install.sh: source it before running tests or benchmarks/gpu_check.py
export PYTHONPATH="$ROOT/src:$KIT/site$EXTRA\${PYTHONPATH:+:\$PYTHONPATH}"
export ANCHORS_CACHE="$KIT/cache"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false HF_HUB_DISABLE_PROGRESS_BARS=1
export GPU_PYTHON="$PYTHON"
SH
. "$KIT/env.sh"
"$PYTHON" - <<'PY'
import importlib, importlib.metadata as md, os, sys
print("python", sys.version.split()[0], sys.executable)
for module, dist in [("torch", "torch"), ("transformers", "transformers"), ("transformer_lens", "transformer-lens"),
                     ("huggingface_hub", "huggingface-hub"), ("tokenizers", "tokenizers"), ("numpy", "numpy"),
                     ("einops", "einops"), ("sklearn", "scikit-learn"), ("sentence_transformers", "sentence-transformers"),
                     ("pydantic", "pydantic"), ("pandas", "pandas"), ("datasets", "datasets"), ("pytest", "pytest"),
                     ("jaxtyping", "jaxtyping"), ("rich", "rich"), ("accelerate", "accelerate")]:
    try:
        mod = importlib.import_module(module)
        where = "kit" if ".gpu_kit" in (getattr(mod, "__file__", "") or "") else "image"
        try:
            version = md.version(dist)
        except md.PackageNotFoundError:
            version = getattr(mod, "__version__", "stand-in" if getattr(mod, "STAND_IN", False) else "?")
        print(f"  {module:22s} {version!s:14s} ({where})")
    except Exception as error:  # report and go on: the caller reads this list
        print(f"  {module:22s} MISSING ({type(error).__name__}: {str(error).splitlines()[0][:120]})")
try:
    import torch
    print("cuda:", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "-",
          "torch.version.cuda", torch.version.cuda)
    from anchors.models import load_model
    import transformer_lens.model_bridge  # noqa: F401  (the bridge imports: fails here rather than mid-test)
    print("anchors + transformer_lens import: ok")
except Exception as error:
    print("IMPORT CHECK FAILED:", type(error).__name__, error)
PY
echo "install done: . .gpu_kit/env.sh"
