#!/bin/sh
# compare.sh — GRPO, SPO-chain and SPO-tree on the demo task with matched generation budgets over
# several seeds; writes a table (Markdown) and plots of test accuracy against generated tokens,
# sampled continuations and wall time.
#
#   examples/compare.sh [BUILD_DIR]
# Environment:
#   OUT       output folder (runs/compare)
#   MODEL     starting policy (examples/demo/warmup: the demo's warm-up checkpoint)
#   SEEDS     seeds ("1 2 3")
#   METHODS   ("grpo spo-chain spo-tree")
#   BUDGET    generated tokens per run (150000): every method stops once it generated this many
#             tokens for training (trajectories, Monte Carlo continuations, tree segments alike)
#   EVAL_EVERY, EVAL_SIZE   intermediate greedy evaluations (every 10 steps, 200 problems; the
#             final one uses the same 200 problems)
#   EXTRA     more trainer flags for every run
# Each run: build/examples/segrl-gsm8k --config examples/demo/rl.json --model.path $MODEL
#   --algo.estimator M --run.seed S --run.max_gen_tokens BUDGET + the method's flags below.
# Method settings for the demo's short answers (~20 tokens): SPO-chain G 4, K 4 Monte Carlo
# continuations per cutpoint, a cutpoint every 2 low-probability tokens (p < 0.9); SPO-tree 4-4
# branching with 8-token segments (the paper's 6-6-6 / 30 tokens is for GSM8K-length answers);
# GRPO G 8.
set -eu
BUILD=${1:-build}
OUT=${OUT:-runs/compare}
HERE=$(cd "$(dirname "$0")" && pwd)
MODEL=${MODEL:-$HERE/demo/warmup}
SEEDS=${SEEDS:-1 2 3}
METHODS=${METHODS:-grpo spo-chain spo-tree}
BUDGET=${BUDGET:-150000}
EVAL_EVERY=${EVAL_EVERY:-10}
EVAL_SIZE=${EVAL_SIZE:-200}
EXTRA=${EXTRA:-}
TRAINER="$BUILD/examples/segrl-gsm8k"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
mkdir -p "$OUT"
"$BUILD/examples/gsm8k-synth" --out "$OUT/data" --seed 1234 > /dev/null
DATA="--data.train $OUT/data/train.jsonl --data.test $OUT/data/test.jsonl"

flags() {
  case "$1" in
    grpo) echo "--algo.group_size 8 --algo.batch_prompts 16" ;;
    spo-chain) echo "--algo.group_size 4 --algo.batch_prompts 16 --spo.mc_samples 4 --spo.cutpoints 2 --spo.cutpoint_tau 0.9" ;;
    spo-tree) echo "--algo.batch_prompts 8 --spo.tree_branching 4-4 --spo.segment_len 8" ;;
  esac
}

for m in $METHODS; do
  for s in $SEEDS; do
    d="$OUT/$m-seed$s"
    if [ -f "$d/summary.json" ]; then echo "$d: done before, kept"; continue; fi
    echo "== $m seed $s"
    "$TRAINER" --config "$HERE/demo/rl.json" $DATA --model.path "$MODEL" --algo.estimator "$m" \
        --run.seed "$s" --run.max_seconds 0 --run.max_gen_tokens "$BUDGET" \
        --eval.every "$EVAL_EVERY" --eval.size "$EVAL_SIZE" --run.progress off --run.log_every 10 \
        --ckpt.every 0 --no-run.plot --run.output_dir "$d" $(flags "$m") $EXTRA > "$d.log" 2>&1 \
      || { echo "$m seed $s failed: see $d.log"; tail -3 "$d.log"; }
    tail -1 "$d.log"
  done
done

# table: final accuracy per seed, mean +- std, steps, samples, tokens, wall time
python3 - "$OUT" "$METHODS" "$SEEDS" <<'PY' > "$OUT/table.md"
import json, sys, statistics as st
out, methods, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
print("| method | seeds | test accuracy before | after (per seed) | after, mean ± std | steps | samples | generated tokens | RL wall s |")
print("|---|---|---|---|---|---|---|---|---|")
for m in methods:
    rows = []
    for s in seeds:
        try:
            rows.append(json.load(open(f"{out}/{m}-seed{s}/summary.json")))
        except OSError:
            pass
    if not rows:
        continue
    b = [r["test_accuracy_before"] for r in rows]
    a = [r["test_accuracy_after"] for r in rows]
    mean = st.mean(a); sd = st.stdev(a) if len(a) > 1 else 0.0
    steps = st.mean(r["steps"] for r in rows); samples = st.mean(r["samples"] for r in rows)
    toks = []
    for s in seeds:
        try:
            lines = [json.loads(l) for l in open(f"{out}/{m}-seed{s}/metrics.jsonl")]
            toks.append(max(l.get("gen_tokens", 0) or 0 for l in lines))
        except OSError:
            pass
    wall = st.mean(r["rl_seconds"] for r in rows)
    print(f"| {m} | {len(rows)} | {100*b[0]:.1f}% | {', '.join(f'{100*x:.1f}%' for x in a)} | "
          f"{100*mean:.1f} ± {100*sd:.1f}% | {steps:.0f} | {samples:.0f} | {st.mean(toks):.0f} | {wall:.0f} |")
PY
cat "$OUT/table.md"

# plots: every run's test accuracy against generated tokens, samples and wall time
"$BUILD/examples/segrl-compare-plot" "$OUT" "$METHODS" "$SEEDS" || echo "no plot written"
