#!/usr/bin/env bash
# NASH on CIFAR-10 (JPEG) on the GPU machine (device tool), from the repo root, with wheels in
# .whl/ and the dataset in .data/cifar10-jpeg.tar.gz.
#   PHASE=main:    the full run of configs/nash_cifar10.yaml (accuracy after every step, GPU time;
#                  SEARCH_SET="--set ..." overrides)
#   PHASE=compare: uniform vs guided vs joint-scaling NASH, same budget, SEEDS in parallel
set -u
. benchmarks/_gpu_env.sh
DATA=.data/cifar10-jpeg.tar.gz
python3 -c "import torch, sklearn; print('torch', torch.__version__, 'sklearn', sklearn.__version__, torch.cuda.get_device_name())"
case "${PHASE:-main}" in
main)
  rm -rf /tmp/nash  # a warm machine may still hold the last run's study
  (nvidia-smi dmon -s u -d 5 > $OUT/dmon.log 2>&1 &)
  # SIGINT at LIMIT seconds: the search saves and exits 130, so a long run still reports
  /usr/bin/time -v timeout -s INT ${LIMIT:-570} python3 -m hwnas.cli search --config configs/nash_cifar10.yaml --data $DATA \
      --out /tmp/nash -q ${SEARCH_SET:-} > $OUT/search.out 2> $OUT/search.err
  pkill -f "nvidia-smi dmon"
  tail -25 $OUT/search.err
  python3 -m hwnas.cli show /tmp/nash --json > $OUT/trials.json
  cp /tmp/nash/hwnas.log /tmp/nash/pareto.json $OUT/
  ;;
compare)
  SMALL="--set strategy.n_steps=4 --set strategy.n_neigh=4 --set strategy.epochs_init=4 \
         --set strategy.epochs_neigh=3 --set strategy.epochs_final=6 --set target=analytic \
         --set objectives=[accuracy] --workers 1 ${COMPARE_SET:-}"
  for seed in ${SEEDS:-0 1}; do
    for v in uniform guided joint; do
      extra=""
      [ $v = guided ] && extra="--set strategy.guided=true"
      [ $v = joint ] && extra="--set strategy.joint_scaling=true --set space.morphisms=[scale,skip]"
      python3 -m hwnas.cli search --config configs/nash_cifar10.yaml --data $DATA --seed $seed \
          --out /tmp/cmp-$v-$seed -q $SMALL $extra > $OUT/cmp-$v-$seed.out 2>&1 &
    done
  done
  wait
  for d in /tmp/cmp-*; do python3 -m hwnas.cli show $d --json > $OUT/$(basename $d).json; done
  tail -n 3 $OUT/cmp-*.out
  ;;
esac
