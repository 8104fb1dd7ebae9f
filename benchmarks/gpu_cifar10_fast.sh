#!/usr/bin/env bash
# configs/cifar10_fast.yaml (or CONFIG=...) on the GPU machine (device tool), in resumable calls of < 10 min.
# From the repo root, with wheels in .whl/, the dataset in .data/cifar10-jpeg.tar.gz and, for
# a resumed call, the study carried in .study/ (study.db from an earlier call's $OUT).
#   PHASE=search  SECONDS_LEFT=540: search (resuming .study/ if there), stopped by SIGINT.
#   ARGS="--set estimator.epochs=12": a variant of the shipped config (both phases alike).
#   PHASE=finish: resume to the end (the final stage trains the reference nets and the front
#                 members that beat one on validation first: final.references), then any
#                 such member it left out (benchmarks/fast_contenders.py), then
#                 benchmarks/fast_headline.py. SECONDS_LEFT (default 560) is the call's time:
#                 a contender is started only with 150 s left and the headline kept 60 s
#                 (a call that ran out inside the contenders brought no headline back); a
#                 later call with the study carried finishes what was left.
set -u
. benchmarks/_gpu_env.sh
D=/tmp/c10f
SEED=${SEED:-0}
CONFIG=${CONFIG:-configs/cifar10_fast.yaml}
mkdir -p $D
[ -f .study/study.db ] && [ ! -f $D/study.db ] && cp .study/study.db $D/
(nvidia-smi dmon -s u -d 5 > $OUT/dmon-${PHASE}.log 2>&1 &)
case "${PHASE:-search}" in
search)
  timeout -s INT "${SECONDS_LEFT:-540}" python3 -m hwnas.cli search --config $CONFIG \
      --data .data/cifar10-jpeg.tar.gz --out $D --seed $SEED ${ARGS:-} -q 2>&1 | tail -3
  ;;
finish)
  end=$(( $(date +%s) + ${SECONDS_LEFT:-560} ))
  timeout -s INT $(( ${SECONDS_LEFT:-560} - 60 )) python3 -m hwnas.cli search --config $CONFIG \
      --data .data/cifar10-jpeg.tar.gz --out $D --seed $SEED ${ARGS:-} -q 2>&1 | tail -12
  rc=${PIPESTATUS[0]}
  cp $D/study.db $OUT/  # after each step: a call cut short by its time limit still brings it
  if [ "$rc" = 130 ] || [ "$rc" = 124 ]; then
    echo "search not finished in this call: run PHASE=finish again with the study carried"
    cp $D/hwnas.log $OUT/; pkill -f "nvidia-smi dmon"; exit 0
  fi
  # front members that beat a reference on validation accuracy and every latency objective
  # (the side-by-side timing of the study's final nets, for `show`'s verdict, after the last)
  ids=$(python3 benchmarks/fast_contenders.py --dir $D --max ${CONTENDERS:-6})
  last=$(echo $ids | awk '{print $NF}')
  for id in $ids; do
    if [ $(( end - $(date +%s) )) -lt 150 ]; then
      echo "contender #$id left for the next call (the headline keeps its time)"; continue
    fi
    rounds=0; [ "$id" = "$last" ] && rounds=5
    python3 -m hwnas.cli train $D --trial $id --repeats 3 --timing-rounds $rounds -q 2>&1 | tail -1
    cp $D/study.db $OUT/
  done
  python3 benchmarks/fast_headline.py --dir $D --tag seed$SEED 2>&1 | grep -v '^ \|^{\|^}' | tail -20
  # only this run's headline: the device tool brings back at most 8 files (older results in
  # the checkout once crowded out study.db)
  new_results "*fast_headline*.json"
  python3 -m hwnas.cli show $D --json > $OUT/trials.json
  cp $D/pareto.json $D/report.html $OUT/ 2>/dev/null
  ;;
esac
pkill -f "nvidia-smi dmon"
cp $D/study.db $D/hwnas.log $OUT/
ls -la $OUT
