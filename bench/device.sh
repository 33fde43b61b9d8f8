#!/usr/bin/env bash
# The accelerator benchmarks in one command, on any Linux machine with an NVIDIA GPU:
#
#   bash bench/device.sh                         # results in ${TMPDIR:-/tmp}/arcx-device-<time>.md
#   bash bench/device.sh --out /some/results.md --quick
#
# It runs, in bf16 and against transformers + torch on the same GPU,
#   1. bench/attention.py: reference, flash (Pallas GPU), blocked and torch SDPA, at
#      T = 1024, 2048, 4096, 8192 (--quick: 1024, 2048), for the Qwen2.5-0.5B and the
#      Qwen2.5-7B attention shapes;
#   2. bench/forward.py: arcx's forward against transformers' (SDPA, output_hidden_states)
#      for the 0.5B shape at 1x2048 and 1x8192 (--quick: 1x2048) and, where bench/forward.py
#      defines it, the 7B shape ("qwen2.5-7b-width").
# Every table goes to the results file as it is printed, so a run cut short keeps what it did.
#
# Python: $ARCX_DEVICE_PYTHON if set; else python3 when it already has jax (with a GPU
# backend), torch (with CUDA), transformers, flax and safetensors; else a venv at
# ${ARCX_DEVICE_VENV:-~/.cache/arcx-device-venv} made with pip from PyPI (jax[$JAX_CUDA_EXTRA], default
# cuda12, flax, torch, transformers, safetensors). arcx is used from this checkout
# (PYTHONPATH), never installed into a shared interpreter.
#
# --cpu-check runs the same steps on CPU at a tiny size with the current interpreter (for
# checking this script on a machine without a GPU; its figures mean nothing).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

OUT=""
QUICK=0
CPU_CHECK=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --cpu-check) CPU_CHECK=1; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "bench/device.sh: unknown argument $1 (see --help)" >&2; exit 64 ;;
  esac
done

[[ -n "$OUT" ]] || OUT="${TMPDIR:-/tmp}/arcx-device-$(date -u +%Y%m%dT%H%M%SZ).md"
mkdir -p "$(dirname "$OUT")"
: >"$OUT"

log() { echo "$*" | tee -a "$OUT"; }

has_stack() {  # $1: python; true when it has everything the benchmarks import, GPU included
  "$1" - <<'EOF' 2>/dev/null
import jax, torch, transformers, flax, safetensors  # noqa: F401
assert jax.default_backend() == "gpu", jax.default_backend()
assert torch.cuda.is_available()
EOF
}

if [[ $CPU_CHECK -eq 1 ]]; then
  PY="${ARCX_DEVICE_PYTHON:-$(command -v python3)}"
  [[ -x .venv/bin/python ]] && PY="${ARCX_DEVICE_PYTHON:-.venv/bin/python}"
  export JAX_PLATFORMS=cpu
else
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "bench/device.sh: no nvidia-smi: this needs a machine with an NVIDIA GPU (or --cpu-check)" >&2
    exit 69
  fi
  if [[ -n "${ARCX_DEVICE_PYTHON:-}" ]]; then
    PY="$ARCX_DEVICE_PYTHON"
  elif has_stack python3; then
    PY="$(command -v python3)"
  else
    VENV="${ARCX_DEVICE_VENV:-$HOME/.cache/arcx-device-venv}"
    if [[ ! -x "$VENV/bin/python" ]] || ! has_stack "$VENV/bin/python"; then
      echo "# creating $VENV (jax[${JAX_CUDA_EXTRA:-cuda12}], torch, transformers) from PyPI" >&2
      mkdir -p "$(dirname "$VENV")"
      python3 -m venv "$VENV"
      "$VENV/bin/pip" install -q --upgrade pip
      "$VENV/bin/pip" install -q "jax[${JAX_CUDA_EXTRA:-cuda12}]" flax torch transformers \
        safetensors numpy
    fi
    PY="$VENV/bin/python"
  fi
  has_stack "$PY" || {
    echo "bench/device.sh: $PY lacks a GPU jax, CUDA torch, transformers, flax or safetensors" >&2
    exit 69
  }
fi

export PYTHONPATH="$ROOT/job_image/src:$ROOT/store/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

if [[ $CPU_CHECK -eq 1 ]]; then
  LENGTHS=(256)
  RUNS=(1x256)
  IMPLS=(reference blocked flash torch_sdpa)
  DTYPE=float32
  ATTN_SHAPES=(qwen2.5-0.5b)
  FWD_SHAPES=(tiny)
else
  LENGTHS=(1024 2048 4096 8192)
  RUNS=(1x2048 1x8192)
  if [[ $QUICK -eq 1 ]]; then LENGTHS=(1024 2048); RUNS=(1x2048); fi
  IMPLS=(reference flash blocked torch_sdpa)
  DTYPE=bfloat16
  ATTN_SHAPES=(qwen2.5-0.5b qwen2.5-7b)
  FWD_SHAPES=(qwen2.5-0.5b-width)
  # the 7B shape runs where bench/forward.py (owned by the model code) defines it
  if grep -q '"qwen2.5-7b-width"' bench/forward.py; then FWD_SHAPES+=(qwen2.5-7b-width); fi
fi

log "# arcx device benchmarks, $(date -u +%Y-%m-%dT%H:%MZ)"
log ""
commit="not a git checkout"
if git rev-parse --short HEAD >/dev/null 2>&1; then
  commit="commit $(git rev-parse --short HEAD)"
  git diff --quiet HEAD 2>/dev/null || commit+=" with uncommitted changes"
fi
log "$commit; python $PY"
if command -v nvidia-smi >/dev/null 2>&1; then
  log "gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
fi
log "$("$PY" -c 'import jax, torch, transformers; print(f"jax {jax.__version__} ({jax.default_backend()}), torch {torch.__version__} (cuda {torch.version.cuda}), transformers {transformers.__version__}")')"

status=0
for shape in "${ATTN_SHAPES[@]}"; do
  log ""
  log "## attention, $shape, $DTYPE"
  log ""
  log '```'
  if ! "$PY" bench/attention.py --shape "$shape" --dtype "$DTYPE" --lengths "${LENGTHS[@]}" \
      --impls "${IMPLS[@]}" 2> >(grep -v '^#' >&2) | tee -a "$OUT"; then
    log "bench/attention.py --shape $shape failed"; status=1
  fi
  log '```'
done

for shape in "${FWD_SHAPES[@]}"; do
  log ""
  log "## forward, $shape, $DTYPE, arcx vs transformers"
  log ""
  log '```'
  # JAX and torch share the GPU in this process: no preallocation of 75% of it by JAX.
  # attention auto = the flash kernel on a GPU; if it fails there, blocked still gives figures.
  for attention in auto blocked; do
    if XLA_PYTHON_CLIENT_PREALLOCATE=false "$PY" bench/forward.py --shapes "$shape" \
        --runs "${RUNS[@]}" --dtype "$DTYPE" --attention "$attention" --no-unrolled \
        | tee -a "$OUT"; then
      break
    fi
    log "bench/forward.py --shapes $shape --attention $attention failed"; status=1
  done
  log '```'
done

echo "results: $OUT" >&2
exit $status
