#!/usr/bin/env bash
# The accelerator image's check, here (issue 35 item 1): a venv holding only the image's packages
# (CPU torch in place of its CUDA build) plus benchmarks/device-requirements.txt runs
# benchmarks/gpu_smoke.py's entry with --cpu on token shards built by the project venv.
#
#   bash benchmarks/image_venv_check.sh [VENV_DIR] [WORK_DIR]
#
# The image (KINDS.md; issue 35): python3 with torch, lightning, pyarrow, tokenizers, tiktoken,
# safetensors, peft, transformers, numpy and pyyaml, and NOT mlflow, prefect, pydantic, datasketch,
# ftfy or fastwarc. The venv gets those ten at requirements.lock's versions (with its hashes) and
# the packages they require there, except pydantic's tree (transformers 5.24 reaches pydantic
# through typer: typer and what only it brings stay out, rich among them, although the image has
# rich: a stricter venv than the image). Then device-requirements.txt, the only thing a GPU run
# carries. Checks, in order: the excluded packages do not import; the smoke's import and the
# training process import none of them; the smoke passes. Also prints the size of the Python 3.12
# (the image's python) manylinux wheels of device-requirements.txt: they must stay under 48 MiB.
# Needs the project venv (.venv or /work/main/.venv via PROJECT_PY) for the token shards, and
# PyPI or pip's cache for the wheels. 2.5-5.5 minutes on 2 cores (RESULTS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
VENV=${1:-/tmp/imgvenv}
WORK=${2:-$(mktemp -d /tmp/image-check-XXXXXX)}
PROJECT_PY=${PROJECT_PY:-$REPO/.venv/bin/python}
PYTHON=${PYTHON:-python3}
IMAGE_PKGS="torch lightning pyarrow tokenizers tiktoken safetensors peft transformers numpy pyyaml"
# Not on the image: pydantic's tree (the device requirements bring pydantic itself back) and
# typer's, which in this lock requires pydantic.
EXCLUDED="pydantic pydantic-core annotated-types typing-inspection typer click shellingham"
EXCLUDED+=" annotated-doc rich markdown-it-py mdurl pygments"
ABSENT="mlflow prefect datasketch ftfy fastwarc resiliparse matplotlib"
mkdir -p "$WORK"
t0=$SECONDS
step() { echo "[$((SECONDS - t0))s] $*"; }

step "1. the image's packages: $IMAGE_PKGS and what they require in requirements.lock"
# The closure from the project venv's metadata (the lock's resolution), minus EXCLUDED.
"$PROJECT_PY" - "$IMAGE_PKGS" "$EXCLUDED" requirements.lock >"$WORK/image.lock" <<'EOF'
import re, sys
import importlib.metadata as md
from packaging.markers import default_environment
from packaging.requirements import Requirement

roots, excluded, lock = sys.argv[1].split(), set(sys.argv[2].split()), sys.argv[3]
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
env = {**default_environment(), "extra": ""}
seen, stack = set(), [norm(n) for n in roots]
while stack:
    name = stack.pop()
    if name in seen or name in excluded:
        continue
    seen.add(name)
    for r in md.distribution(name).requires or []:
        req = Requirement(r)
        if not req.marker or req.marker.evaluate(env):
            stack.append(norm(req.name))
# The lock's entries (name==version and its --hash lines) of those packages.
entries = re.split(r"\n(?=[a-z0-9])", open(lock).read())
picked = [e for e in entries if "==" in e and norm(e.split("==")[0]) in seen]
missing = seen - {norm(e.split("==")[0]) for e in picked}
if missing:
    sys.exit(f"not in the lock: {sorted(missing)}")
print("\n".join(e.split("\n    # via")[0].rstrip() for e in picked))
print(f"{len(picked)} packages", file=sys.stderr)
EOF
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --require-hashes --no-deps -r "$WORK/image.lock"

step "2. + benchmarks/device-requirements.txt"
cat benchmarks/device-requirements.txt
"$VENV/bin/python" -m pip install -q --no-deps -r benchmarks/device-requirements.txt
"$VENV/bin/python" -m pip list --format=freeze >"$WORK/image-venv.txt"
echo "$(wc -l <"$WORK/image-venv.txt") distributions in $VENV (list: $WORK/image-venv.txt)"

step "3. what the image lacks is not importable there"
for mod in $ABSENT; do
  if "$VENV/bin/python" -c "import $mod" 2>/dev/null; then
    echo "FAIL: $mod imports in the image venv" && exit 1
  fi
done
echo "ok: none of $ABSENT imports"

step "4. the smoke and the training process import none of them"
"$VENV/bin/python" - "$ABSENT" <<'EOF'
import sys

absent = sys.argv[1].split()
sys.path.insert(0, ".")
import benchmarks.gpu_smoke  # noqa: F401
import pipeline.pretrain.__main__  # noqa: F401
import pipeline.pretrain.run  # noqa: F401

loaded = sorted({m.split(".")[0] for m in sys.modules} & set(absent))
print("loaded:", loaded or "none of them")
sys.exit(1 if loaded else 0)
EOF

step "5. token shards, built by the project venv (the demo config's tokenize stage)"
"$PROJECT_PY" benchmarks/gpu_smoke.py --cpu --build-tokens "$WORK/run"
du -sh "$WORK/run/tokenize"

step "6. the GPU entry with --cpu in the image venv"
"$VENV/bin/python" benchmarks/gpu_smoke.py --cpu --run-dir "$WORK/run" --scratch "$WORK/smoke"

step "7. the wheels a GPU run carries (Python 3.12, manylinux x86_64): at most 48 MiB"
rm -rf "$WORK/wheels"
"$VENV/bin/python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
  -d "$WORK/wheels" -r benchmarks/device-requirements.txt
ls -l "$WORK/wheels" | tail -n +2
bytes=$(cat "$WORK"/wheels/*.whl | wc -c)
echo "wheels: $bytes bytes ($((bytes / 1024)) KiB) in $WORK/wheels"
[ "$bytes" -le $((48 * 1024 * 1024)) ] || { echo "FAIL: over 48 MiB" && exit 1; }
step "image venv check: PASS"
