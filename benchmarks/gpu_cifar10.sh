#!/usr/bin/env bash
# On the GPU machine (device tool), from the repo root, with wheels in .whl/ and the dataset in
# .data/cifar10-jpeg.tar.gz.  PHASE=probe: quick check + cuda-torch latency protocol.
# PHASE=start: launch the 10-minute search in the background.  PHASE=collect: wait, gather.
set -u
. benchmarks/_gpu_env.sh
case "${PHASE:-probe}" in
probe)
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch, onnxruntime, pydantic; print('torch', torch.__version__, 'ort', onnxruntime.__version__, 'pydantic', pydantic.__version__)"
  python3 -m hwnas.cli search --config configs/cifar10.yaml --data .data/cifar10-jpeg.tar.gz \
      --out /tmp/probe --budget 2 -q --set budget.minutes=null ${PROBE_SET:-} 2>&1 | tail -5
  python3 -m hwnas.cli show /tmp/probe --json > $OUT/probe_trials.json
  python3 benchmarks/latency_protocol.py --target cuda-torch --n 10 --resolution 32 --channels 3 | tail -3
  new_results "*latency_protocol_cuda-torch.json"
  ;;
start)
  rm -rf /tmp/c10  # a warm machine may still hold the last run's study
  (nvidia-smi dmon -s u -d 5 > /tmp/dmon.log 2>&1 &)
  setsid nohup python3 -m hwnas.cli search --config configs/cifar10.yaml --data .data/cifar10-jpeg.tar.gz \
      --out /tmp/c10 -q ${SEARCH_SET:-} > /tmp/c10.out 2>&1 < /dev/null &
  sleep "${WAIT:-540}"
  tail -2 /tmp/c10/hwnas.log | cut -c1-300
  ;;
collect)
  while pgrep -f "hwnas.cli search" >/dev/null; do sleep 5; done
  cat /tmp/c10.out
  pkill -f "nvidia-smi dmon"
  cp /tmp/dmon.log /tmp/c10/pareto.json /tmp/c10/report.html /tmp/c10/hwnas.log $OUT/
  python3 -m hwnas.cli show /tmp/c10 --json > $OUT/trials.json
  ;;
esac
