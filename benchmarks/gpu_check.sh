#!/usr/bin/env bash
# GPU check: one prepared script for a CUDA machine (about 6-8 minutes). Prints
#   1. the machine (GPU, CPU, torch) and the matmul ceilings;
#   2. training steps/s of DQL, IDQL, EDP and SWG in fp32 and bf16 (and with torch.compile), with each
#      trial's peak GPU memory (benchmarks/bench_train.py --device cuda);
#   3. evaluation episodes/s with 50 lockstep envs, fp32 and bf16, against the fp32 one-env loop
#      (benchmarks/bench_eval.py --device cuda, 200-step episodes to bound the one-env baseline);
#   4. a 2-trial sweep (quickstart, seed 0: DQL joint + frozen, 400 steps, plus its pretraining) on
#      fractional GPUs (trials 0.5 GPU, 2 evaluators 0.25 GPU each), its wall time and each trial's
#      peak GPU memory from the result tables.
# On a machine without CUDA it says so and exits 0. Nothing is asserted.
#
#   bash benchmarks/gpu_check.sh            # from the repository root; PYTHON=... to pick the interpreter
#   OUT=/tmp/gpu_check bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python
OUT=${OUT:-$(mktemp -d /tmp/mdpt_gpu_check.XXXXXX)}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" RAY_USAGE_STATS_ENABLED=0

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False); nothing to measure."
    exit 0
fi
T0=$(date +%s)
step() { echo; echo "== $1 ($(( $(date +%s) - T0 )) s elapsed)"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" - <<'EOF'
import sys; sys.path.insert(0, "benchmarks")
from sysinfo import describe_machine, measure_ceilings
print(describe_machine(measure_ceilings("cuda")))
EOF

step "training steps/s (batch 256, Hopper shapes), fp32 / bf16 / torch.compile, peak GPU memory per trial"
timeout 300 "$PY" benchmarks/bench_train.py --device cuda --threads 4 --steps 50 --rounds 3 --warmup 5 --compile \
    --algos dql idql edp swg || echo "(training benchmark stopped: exit $?)"

step "evaluation: 50 lockstep envs vs the fp32 one-env loop (200-step episodes)"
timeout 150 "$PY" benchmarks/bench_eval.py --device cuda --threads 4 --episodes 50 --max-steps 200 \
    --variants fp32-one fp32-lockstep bf16-lockstep || echo "(evaluation benchmark stopped: exit $?)"

step "2-trial sweep on fractional GPUs (trial 0.5 GPU, evaluators 0.25 GPU)"
S0=$(date +%s)
timeout 240 "$PY" -m sweeps.cli sweep quickstart --scale smoke --out "$OUT/sweep" \
    --set seeds=[0] --set budgets.smoke.steps=400 --set budgets.smoke.eval_every=200 \
    --set budgets.smoke.pretrain_steps=400 --set resources.trial.cpu=2 --set resources.trial.gpu=0.5 \
    --set resources.evaluators.count=2 --set resources.evaluators.cpu=1 --set resources.evaluators.gpu=0.25 \
    > "$OUT/sweep.log" 2>&1 || echo "(sweep stopped: exit $?; log $OUT/sweep.log)"
echo "sweep wall time: $(( $(date +%s) - S0 )) s (log: $OUT/sweep.log)"
"$PY" - "$OUT/sweep" <<'EOF' || true
import sys
from pathlib import Path
import pyarrow.dataset as ds
root = Path(sys.argv[1]) / "results"
train = ds.dataset(root / "train", format="parquet").to_table().to_pylist() if (root / "train").exists() else []
peak = {}
for r in train:
    if r["metric"] == "mem/peak_mb":
        peak[r["trial_id"]] = max(peak.get(r["trial_id"], 0.0), r["value"])
    if r["metric"] == "time/steps_per_s":
        peak.setdefault(("sps", r["trial_id"]), []).append(r["value"])
for k, v in peak.items():
    if not isinstance(k, tuple):
        sps = peak.get(("sps", k), [])
        print(f"trial {k}: peak GPU memory {v:.0f} MB, steps/s {sum(sps) / max(len(sps), 1):.1f}")
evals = ds.dataset(root / "evals", format="parquet").to_table() if (root / "evals").exists() else None
print(f"evaluation rows: {0 if evals is None else evals.num_rows}")
EOF
echo
echo "gpu_check done in $(( $(date +%s) - T0 )) s; outputs under $OUT"
