#!/usr/bin/env bash
# benchmarks/oneshot_vs_evolution.py on the GPU machine (device tool), in calls of < 10 min.
# From the repo root, with wheels in .whl/ and the dataset in .data/cifar10-jpeg.tar.gz.
#   PHASE=oneshot    configs/fbnet_chain_cifar10.yaml (resumes from its supernet checkpoints)
#   PHASE=evolution  configs/cifar10.yaml (ten minutes of evolution: two calls)
#   PHASE=compare    both fronts re-timed side by side, FINAL=1 final training(s) of each member
#                    (runs already stored are reused), the result into $OUT
# A phase is stopped by SIGINT after SECONDS_LEFT (default 520 s) and goes on in the next call
# (a finished one returns at once). The studies come back as $OUT/ove.tgz.part-* (15 MB
# pieces): carry them in .oveparts/ and a fresh machine starts from them (a warm one keeps its
# own .ove/). Trial weights and supernet checkpoints are left out (this chain supernet holds
# 12.5 M weights: ~100 MB a checkpoint with its optimiser state, beyond what a call may carry),
# so a trial cut short restarts from its first epoch on a fresh machine, and the one-shot
# phase must end on one warm machine (chain its calls within the idle window); once its nets
# are derived they live in the study, which resumes anywhere.
set -u
. benchmarks/_gpu_env.sh
D=$PWD/.ove   # ignored
PHASE=${PHASE:-oneshot}
shopt -s nullglob
carried=(.oveparts/*)
if [ ${#carried[@]} -gt 0 ] && [ ! -d $D ]; then
  mkdir -p $D && cat "${carried[@]}" | tar xz -C $D
fi
mkdir -p $D
search() {  # config, study
  timeout -s INT "${SECONDS_LEFT:-520}" python3 -m hwnas.cli search --config "$1" \
    --data .data/cifar10-jpeg.tar.gz --out "$D/$2" -q ${ARGS:-} 2>&1 | tail -6
}
(nvidia-smi dmon -s u -d 5 > $OUT/dmon-$PHASE.log 2>&1 &)
case $PHASE in
oneshot) search configs/fbnet_chain_cifar10.yaml oneshot ;;
evolution) search configs/cifar10.yaml evolution ;;
compare)  # only this call's result comes back (none when it was cut short)
  timeout -s INT "${SECONDS_LEFT:-520}" python3 benchmarks/oneshot_vs_evolution.py \
    --oneshot $D/oneshot --evolution $D/evolution --final-repeats ${FINAL:-1} \
    --tag ${TAG:-gpu} --dataset "CIFAR-10 (JPEG)" > /tmp/ove-compare.log 2>&1
  grep -v '^ \|^{\|^}\|^\]' /tmp/ove-compare.log | tail -40
  saved=$(sed -n 's/^saved //p' /tmp/ove-compare.log)
  [ -n "$saved" ] && cp "$saved" $OUT/
  ;;
*) echo "PHASE must be oneshot, evolution or compare, not $PHASE" >&2; exit 2 ;;
esac
pkill -f "nvidia-smi dmon"
for s in oneshot evolution; do [ -f $D/$s/hwnas.log ] && cp $D/$s/hwnas.log $OUT/$s.log; done
(cd $D && tar cz --exclude='./*/weights' --exclude='./*/supernet' .) \
  | split -b 15m - $OUT/ove.tgz.part-
ls -la $OUT
