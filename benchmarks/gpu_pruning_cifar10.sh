#!/usr/bin/env bash
# Multi-fidelity and learning-curve pruning on real training (issue 14) on the GPU machine
# (device tool): benchmarks/pruning.py on CIFAR-10 (JPEG) with the fast GPU recipe,
# 16-epoch candidates validated every epoch, MACs as the cost (counted: two runs of a seed
# differ by the search alone), the variants of a seed side by side on one GPU.
# From the repo root, with wheels in .whl/ and the dataset in .data/cifar10-jpeg.tar.gz.
# One seed per call: runs finished in earlier calls come back in prun.tar.gz (studies without
# their weights); unpacked into .prun/ and carried, they count as done, so
#   SEEDS=1 bash benchmarks/gpu_pruning_cifar10.sh        # seed 0
#   SEEDS=2 bash benchmarks/gpu_pruning_cifar10.sh        # seed 1, then both analysed
# After the searches, the curve predictor against the last observed accuracy on the unpruned
# runs' curves (benchmarks/curve_extrapolation.py --from).
set -u -o pipefail
. benchmarks/_gpu_env.sh
D=$PWD/.prun
VARIANTS=${VARIANTS:-baseline,hyperband-warm-resume-m2,bohb-warm-resume,curve}
(nvidia-smi dmon -s u -d 5 > $OUT/dmon-pruning.log 2>&1 &)
timeout -s INT "${SECONDS_LEFT:-540}" python3 benchmarks/pruning.py --variants "$VARIANTS" \
    --seeds "${SEEDS:-1}" --budget "${BUDGET:-30}" --jobs "${JOBS:-4}" --cost macs --out "$D" \
    --tag "cifar10-gpu${TAG:-}" --set data=cifar10 --set "data.path=$PWD/.data/cifar10-jpeg.tar.gz" \
    --set device=cuda --set space=fastcnn --set estimator.recipe=fast --set estimator.epochs=16 \
    --set estimator.fast.eval_every_epoch=true ${ARGS:-} 2>&1 \
  | grep -v '^ *"\|^ *[]}{[]\|^ *[-0-9.]*,\?$' | tail -40  # the tables, not the JSON
pkill -f "nvidia-smi dmon"
# the curve predictor against the last observed accuracy, on the finished unpruned runs' curves
froms=()
for d in "$D"/baseline-seed*; do
  grep -q '"done": true' "$d/bench-run.json" 2>/dev/null && froms+=(--from "$d")
done
[ ${#froms[@]} -gt 0 ] && python3 benchmarks/curve_extrapolation.py "${froms[@]}" \
    --tag "cifar10-gpu${TAG:-}" 2>&1 | grep "rho" | tail -8
new_results "*.json"
# each run's study, log and marker (weights and report stay: too large to bring back)
tar -czf $OUT/prun.tar.gz --exclude=weights --exclude=report.html -C "$D" .
ls -la $OUT
