#!/usr/bin/env bash
# benchmarks/oneshot_fbnet.py on the GPU machine (device tool), in one call of < 10 min.
# From the repo root, with wheels in .whl/ and the dataset in .data/cifar10-jpeg.tar.gz.
#   ARGS="--skip-targets" to leave the latency-target study out.
set -u
. benchmarks/_gpu_env.sh
D=$PWD/.osf   # ignored: kept on a warm machine, so a second call resumes the studies
(nvidia-smi dmon -s u -d 5 > $OUT/dmon-oneshot.log 2>&1 &)
cd benchmarks
timeout -s INT ${SECONDS_LEFT:-530} python3 oneshot_fbnet.py --data ../.data/cifar10-jpeg.tar.gz --out $D --tag ${TAG:-h200} ${ARGS:-} 2>&1 \
  | grep -v '^    \|^{\|^}\|^\]' | tail -40
cd ..
pkill -f "nvidia-smi dmon"
new_results "*oneshot_fbnet*.json"; cp $D/oneshot_fbnet.html $OUT/ 2>/dev/null
for s in latency macs targets ref mac-targets; do
  [ -d $D/$s ] || continue
  mkdir -p $OUT/$s
  cp $D/$s/hwnas.log $D/$s/pareto.json $OUT/$s/ 2>/dev/null
  python3 -m hwnas.cli show $D/$s --json > $OUT/$s/trials.json 2>/dev/null
done
ls -la $OUT
