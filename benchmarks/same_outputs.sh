#!/usr/bin/env bash
# Do two commits of lmpipe build the same data and train the same model? (issue 34: "keep the
# data-stage digests and training losses identical through refactors")
#
#   bash benchmarks/same_outputs.sh OLD_REV [NEW_REV] [--set k=v ...]
#
# Checks out both commits (git worktrees under $TMPDIR/lmpipe-same/), runs the demo config's data
# stages, pretraining (40 steps) and fine-tuning (10 steps) with each, on the same input at the same
# absolute path (document ids and unit keys depend on it), MLflow and Prefect in temporary homes,
# then compares: every .arrow file and tokenizer.json of ingest..tokenize (sha256), both
# model.safetensors, and every logged training loss. Extra --set options go to NEW_REV's run only
# (e.g. --set quality.enabled=false when NEW_REV adds a stage the demo turns on). Needs `make setup`.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
old=$1; new=${2:-HEAD}; shift; [ $# -gt 0 ] && shift
root=${TMPDIR:-/tmp}/lmpipe-same; rm -rf "$root"; mkdir -p "$root"
input="$repo/data/sample/python-docs.warc.gz"
run() {  # name rev [--set ...]
  local name=$1 rev=$2; shift 2
  git -C "$repo" worktree add -f --detach "$root/$name" "$rev" -q
  (cd "$root/$name" && PYTHONPATH=$PWD MLFLOW_TRACKING_URI="sqlite:///$root/$name.db" \
    PREFECT_HOME="$root/$name-prefect" PREFECT_SERVER_ANALYTICS_ENABLED=false \
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=180 \
    "$repo/.venv/bin/python" -m flows.cli run --config configs/demo.yaml \
      --set "run_dir=\"$root/$name-run\"" --set "inputs=[\"$input\"]" \
      --set "registry.tracking_uri=\"sqlite:///$root/$name.db\"" \
      --set pretrain.max_steps=40 --set finetune.max_steps=10 "$@" \
      --stages ingest clean dedup tokenize pretrain finetune > "$root/$name.log" 2>&1)
  (cd "$root/$name-run" && find ingest clean dedup tokenize \( -name '*.arrow' -o -name tokenizer.json \) \
    | sort | xargs sha256sum > "$root/$name.data" && sha256sum pretrain/model.safetensors \
    finetune/model.safetensors > "$root/$name.weights")
  grep -o "step [0-9]*/[0-9]*: loss [0-9.]*" "$root/$name.log" > "$root/$name.losses"
  git -C "$repo" worktree remove --force "$root/$name"
}
run old "$old"
run new "$new" "$@"
cd "$root"
echo "data stages: $(sha256sum < old.data | cut -c1-16) vs $(sha256sum < new.data | cut -c1-16) ($(wc -l < old.data) files)"
diff old.data new.data && echo "data: identical"
diff old.weights new.weights && echo "weights: identical"
diff old.losses new.losses && echo "losses: identical ($(wc -l < old.losses) logged steps)"
