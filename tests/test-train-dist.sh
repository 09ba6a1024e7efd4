#!/bin/sh
# test-train-dist.sh TRAINER WORKDIR MPIEXEC LAUNCHER ST_DIFF [ORTE] — the example trainer run
# data-parallel (issue 9; tests/train.cmake). A tiny model, a few steps; the global batch is the
# same in every run, so W processes must end with the parameters of one process (to rounding):
#   equal:    grpo (with a sharded supervised warm-up and 2 minibatches), reinforce++ (batch
#             whitening over every rank, with a k3 KL term and its reference model), ppo (values,
#             GAE and whitening), spo-chain (Monte Carlo values), spo-tree — each by mpirun with 2
#             processes and with 3 (uneven slices: 5 prompts as 2+3 and 1+2+2), against one
#             process (spo-tree with 2 minibatches). The per-step rewards must be identical (the same samples on any layout).
#   resume:   2 steps on 2 processes, then resumed on 3 for 2 more = 4 steps on one process.
#   tcp:      the torchrun-style launch (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT; gradients
#             over the TCP transport) equals one process too.
#   failure:  a rank that leaves the job mid-run makes the other stop with a communication error
#             within its timeout (MPI with abort-on-exit off when ORTE=1, and the TCP launch).
# Tolerance: |a - b| <= 1e-4 on every parameter after 3-4 AdamW steps at lr 0.01 (a gradient not
# summed over the ranks, or a local normalizer, moves weights by ~lr = 1e-2 per step). AdamW's
# eps is 1e-6 here: with 1e-8 an element whose gradient is a near-cancelling sum (~1e-9) turns
# the rounding of the cross-rank sum into an update difference of up to ~2e-4 (measured: ppo).
# Prints "N passed, N failed" last; exit status 1 on a failure.
set -u
TRAINER=$1; WORK=$2; MPIEXEC=$3; LAUNCHER=$4; STDIFF=$5; ORTE=${6:-0}
rm -rf "$WORK"; mkdir -p "$WORK"
pass=0; fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPI="$MPIEXEC --oversubscribe"

COMMON="--data.synth_train 400 --data.synth_test 16 --model.tiny_dim 32 --model.tiny_layers 1
  --model.tiny_heads 2 --model.tiny_ffn 64 --model.tiny_vocab 300 --model.tiny_ctx 96
  --algo.batch_prompts 5 --algo.group_size 4 --gen.max_new_tokens 12 --eval.size 7 --eval.every 0
  --no-run.plot --optim.lr 0.01 --spo.tree_branching 2-2 --spo.segment_len 5 --spo.mc_samples 2
  --spo.cutpoint_tau 0.99 --spo.cutpoints 2 --reward.name format --run.progress off
  --ckpt.every 0 --run.threads 1 --dist.timeout_s 60 --optim.eps 1e-6"
ROPT='{"pattern":"[0-9]"}'
TOL="1e-4 0"

# the per-step rewards of a metrics file
rewards_of() { grep -o '"reward_mean":[^,]*' "$1/metrics.jsonl"; }

# same DIR_A DIR_B WHAT: equal parameters within TOL and identical per-step rewards
same() {
  if out=$("$STDIFF" "$1/model" "$2/model" $TOL); then ok; else bad "$3: parameters differ: $out"; fi
  echo "$3: $out"
  if [ "$(rewards_of "$1")" = "$(rewards_of "$2")" ] && [ -n "$(rewards_of "$1")" ]; then ok
  else bad "$3: the per-step rewards differ (different samples)"; fi
}

# run DIR LAUNCH... -- ARGS: a run that must succeed
run() {
  d=$1; shift
  if ! "$@" > "$d.log" 2>&1; then bad "$d: the run failed"; tail -8 "$d.log"; return 1; fi
  ok
}

for e in grpo reinforce++ ppo spo-chain spo-tree; do
  extra="--run.steps 3"
  case $e in
    grpo) extra="$extra --sft.steps 2 --sft.batch_size 5 --algo.minibatches 2" ;;
    reinforce++) extra="$extra --loss.kl_type k3 --loss.kl_coef 0.05" ;;
    spo-tree) extra="$extra --algo.minibatches 2" ;;
  esac
  base="$WORK/$e-1"
  run "$base" "$TRAINER" $COMMON $extra --reward.options "$ROPT" --algo.estimator $e \
      --run.output_dir "$base" || continue
  for np in 2 3; do
    d="$WORK/$e-$np"
    run "$d" $MPI -np $np "$TRAINER" $COMMON $extra --reward.options "$ROPT" \
        --algo.estimator $e --run.output_dir "$d" || continue
    grep -q "data-parallel: $np processes (mpi)" "$d.log" && ok \
      || bad "$e: np $np: no data-parallel start line in the log"
    same "$base" "$d" "$e: $np processes vs 1"
  done
done

# resume on another number of processes: 2 steps on 2, then 2 more on 3 == 4 steps on 1
base="$WORK/resume-1"
run "$base" "$TRAINER" $COMMON --reward.options "$ROPT" --run.steps 4 --run.output_dir "$base"
d="$WORK/resume-23"
if run "$d" $MPI -np 2 "$TRAINER" $COMMON --reward.options "$ROPT" --run.steps 2 \
     --run.output_dir "$d"; then
  mv "$d.log" "$d-first.log"
  if run "$d" $MPI -np 3 "$TRAINER" $COMMON --reward.options "$ROPT" --run.steps 4 \
       --run.resume auto --run.output_dir "$d"; then
    grep -q "resume: .* at step 2" "$d.log" && ok || bad "resume: the 3-process run did not resume at step 2"
    same "$base" "$d" "resume: 2 steps on 2 processes + 2 on 3 vs 4 on 1"
  fi
fi

# the torchrun-style launch (TCP rendezvous and transport)
d="$WORK/tcp-2"
if run "$d" "$LAUNCHER" 2 ok "$TRAINER" $COMMON --reward.options "$ROPT" --run.steps 3 \
     --algo.estimator grpo --run.output_dir "$d"; then
  grep -q "data-parallel: 2 processes (tcp)" "$d.log" && ok || bad "tcp: not a 2-process tcp run"
  base="$WORK/tcp-1"
  run "$base" "$TRAINER" $COMMON --reward.options "$ROPT" --run.steps 3 --algo.estimator grpo \
      --run.output_dir "$base" && same "$base" "$d" "tcp: 2 processes vs 1"
fi

# a rank that leaves mid-run: the others stop with a communication error, no hang
if [ "$ORTE" = 1 ]; then
  d="$WORK/dies-mpi"
  t0=$(date +%s)
  SEGRL_TRAIN_FAULT_EXIT="1,1" timeout 120 $MPI -np 2 --mca orte_abort_on_non_zero_status 0 \
    "$TRAINER" $COMMON --reward.options "$ROPT" --run.steps 3 --dist.timeout_s 3 \
    --run.output_dir "$d" > "$d.log" 2>&1
  rc=$?; t1=$(date +%s)
  [ $rc != 0 ] && [ $rc != 124 ] && ok || bad "mpi: a rank left: exit status $rc (124: hang)"
  grep -q "leaving at step 1" "$d.log" && grep -q "communication" "$d.log" && ok \
    || { bad "mpi: no communication error reported"; tail -5 "$d.log"; }
  echo "mpi: a rank left at step 1: the job ended in $((t1 - t0)) s with status $rc"
fi
d="$WORK/dies-tcp"
port=$((20000 + $$ % 20000))
t0=$(date +%s)
for r in 1 0; do
  SEGRL_TRAIN_FAULT_EXIT="1,1" RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r LOCAL_WORLD_SIZE=2 \
    MASTER_ADDR=127.0.0.1 MASTER_PORT=$port timeout 120 "$TRAINER" $COMMON \
    --reward.options "$ROPT" --run.steps 3 --dist.timeout_s 3 --run.output_dir "$d" \
    > "$d.$r.log" 2>&1 &
done
wait %1; rc1=$?
wait %2; rc0=$?
t1=$(date +%s)
[ $rc1 = 3 ] && ok || bad "tcp: the leaving rank exited $rc1, expected 3"
[ $rc0 != 0 ] && [ $rc0 != 124 ] && ok || bad "tcp: rank 0 exited $rc0 after its peer left (124: hang)"
grep -q "communication" "$d.0.log" && ok || { bad "tcp: rank 0 reported no communication error"; tail -3 "$d.0.log"; }
echo "tcp: a rank left at step 1: rank 0 ended in $((t1 - t0)) s with status $rc0: $(tail -1 "$d.0.log")"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
