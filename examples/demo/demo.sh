#!/bin/sh
# demo.sh — the CPU training demo (`make demo`): a tiny Llama (d 128, 4 layers, ~0.85M parameters)
# learns two-step arithmetic word problems in GSM8K format, first by supervised warm-up on worked
# solutions, then by RL (GRPO by default) with the GSM8K verifier as the reward. No downloads.
#
#   examples/demo/demo.sh [BUILD_DIR]        environment: see below
#
# Steps:
#   1. gsm8k-synth writes the synthetic dataset (20000 train + 500 test problems) to $OUT/data
#   2. warm-up: the shipped checkpoint examples/demo/warmup (made by this script with
#      WARMUP=1 and the command in examples/demo/README.md), or with WARMUP=1 a fresh tokenizer, a
#      fresh model and WARMUP_SECONDS of supervised training
#   3. RL for RL_SECONDS from the warm-up model; greedy test accuracy (500 problems) before and after
#   4. control (CONTROL=1, default): supervised training continued from the same warm-up model for
#      as long as RL ran, so the RL gain can be compared with "more of the same"
# Environment: OUT (runs/demo), WARMUP (0), WARMUP_SECONDS (240), RL_SECONDS (240), CONTROL (1),
#   SEED (1: RL sampling and data order), ESTIMATOR (grpo), EXTRA (more trainer flags for RL).
# Threads: 1 compute thread for libtorch and OpenBLAS (fastest on 2 cores; DEMO_CALIBRATION).
set -eu
BUILD=${1:-build}
OUT=${OUT:-runs/demo}
WARMUP=${WARMUP:-0}
WARMUP_SECONDS=${WARMUP_SECONDS:-240}
RL_SECONDS=${RL_SECONDS:-240}
CONTROL=${CONTROL:-1}
SEED=${SEED:-1}
ESTIMATOR=${ESTIMATOR:-grpo}
EXTRA=${EXTRA:-}
HERE=$(cd "$(dirname "$0")" && pwd)
TRAINER="$BUILD/examples/segrl-gsm8k"
SYNTH="$BUILD/examples/gsm8k-synth"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
[ -x "$TRAINER" ] || { echo "demo: $TRAINER is missing (the ATen bridge needs libtorch: make deps)"; exit 1; }
mkdir -p "$OUT"
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
json() { sed -n "s/.*\"$2\":\([-0-9.e]*\).*/\1/p" "$1" | tail -1; }

echo "== 1. synthetic data"
"$SYNTH" --out "$OUT/data" --seed 1234 > "$OUT/data.log"
tail -1 "$OUT/data.log"
DATA="--data.train $OUT/data/train.jsonl --data.test $OUT/data/test.jsonl"

if [ "$WARMUP" = 1 ]; then
  echo "== 2. supervised warm-up from scratch ($WARMUP_SECONDS s)"
  t0=$(now)
  "$TRAINER" --config "$HERE/warmup.json" $DATA --run.seed "$SEED" \
      --sft.max_seconds "$WARMUP_SECONDS" --run.output_dir "$OUT/warmup" | grep --line-buffered -v '^  '
  WARM_S=$(secs "$t0" "$(now)")
  MODEL="$OUT/warmup/sft-model"
else
  echo "== 2. warm-up: the shipped checkpoint $HERE/warmup (WARMUP=1 redoes it)"
  WARM_S="shipped"
  MODEL="$HERE/warmup"
fi

echo "== 3. RL ($ESTIMATOR, $RL_SECONDS s)"
"$TRAINER" --config "$HERE/rl.json" $DATA --model.path "$MODEL" --run.seed "$SEED" \
    --algo.estimator "$ESTIMATOR" --run.max_seconds "$RL_SECONDS" --run.output_dir "$OUT/rl" \
    $EXTRA | grep --line-buffered -v '^  '
RL_S=$(json "$OUT/rl/summary.json" rl_seconds)
BEFORE=$(json "$OUT/rl/summary.json" test_accuracy_before)
AFTER=$(json "$OUT/rl/summary.json" test_accuracy_after)

CTRL=""
if [ "$CONTROL" = 1 ]; then
  echo "== 4. control: supervised training continued for the same time ($RL_S s)"
  "$TRAINER" --config "$HERE/warmup.json" $DATA --model.path "$MODEL" --run.seed "$SEED" \
      --sft.max_seconds "$RL_S" --sft.warmup_steps 0 --run.output_dir "$OUT/control" \
      | grep --line-buffered -v '^  '
  CTRL=$(json "$OUT/control/sft_metrics.jsonl" test_accuracy)
fi

pct() { awk -v x="$1" 'BEGIN { printf "%.1f%%", 100 * x }'; }
echo
echo "== demo summary (greedy pass@1 on 500 test problems; 1 compute thread)"
if [ "$WARMUP" = 1 ]; then echo "  warm-up wall time:             $WARM_S s"
else echo "  warm-up:                       shipped checkpoint (examples/demo/warmup)"; fi
echo "  test accuracy after warm-up:   $(pct "$BEFORE")"
echo "  RL ($ESTIMATOR) wall time:       $RL_S s"
echo "  test accuracy after RL:        $(pct "$AFTER")"
[ -n "$CTRL" ] && echo "  control, SFT for $RL_S s more: $(pct "$CTRL")"
echo "  plot: $OUT/rl/metrics.png   metrics: $OUT/rl/metrics.jsonl"
