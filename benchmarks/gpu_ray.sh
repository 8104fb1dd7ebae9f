#!/usr/bin/env bash
# Ray against the process pool on one GPU (device tool): configs/cifar10_fast.yaml's candidates,
# 8 in flight on one card (Ray: 1/8 of the GPU each; the pool: --workers 8), side by side
# (benchmarks/ray_overhead.py). The machine has no Ray and its wheel is larger than one call
# may carry, so it comes in two calls on a warm machine (benchmarks/ray_wheels.sh makes .rayw/):
#   PART=a  carry .rayw/a .whl                          -> keeps part 1 and the wheels in /tmp
#   PART=b  carry .rayw/b .data/cifar10-jpeg.tar.gz     -> joins, installs, runs
# The second call must come before the machine goes back (status: idle_release_s). TAG names
# the card in the result file (TAG=h200-8 or h100-8: the tool may lend either).
set -u
OUT=${OUT:-/tmp/out}
case "${PART:-a}" in
a)
  mkdir -p /tmp/rayparts && cp .rayw/a/* /tmp/rayparts/
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  ls -la /tmp/rayparts
  ;;
b)
  whl=$(basename .rayw/b/ray-*.part-01 .part-01)
  cat /tmp/rayparts/$whl.part-00 .rayw/b/$whl.part-01 > /tmp/rayparts/$whl
  echo "$(cat .rayw/b/$whl.sha256)  /tmp/rayparts/$whl" | sha256sum -c - || exit 3
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    /tmp/rayparts/$whl .rayw/b/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 HWNAS_CACHE=/tmp/hwnas-cache
  python3 -c "import ray; print('ray', ray.__version__)" || exit 3
  (nvidia-smi dmon -s u -d 5 > $OUT/dmon-ray.log 2>&1 &)
  cd benchmarks
  timeout -s INT ${SECONDS_LEFT:-500} python3 ray_overhead.py --config ../configs/cifar10_fast.yaml \
    --data ../.data/cifar10-jpeg.tar.gz --budget ${BUDGET:-48} --workers 8 --repeats ${REPEATS:-1} \
    --gpus-per-trial 0.125 --set final.repeats=0 --tag ${TAG:-gpu-8} 2>&1 | tail -20
  cd ..
  pkill -f "nvidia-smi dmon"
  # only this call's result (the checkout carries the earlier ones)
  find benchmarks/results -maxdepth 1 -name "*ray_overhead*" -newer /tmp/rayparts/$whl -exec cp {} $OUT/ \;
  ;;
esac
