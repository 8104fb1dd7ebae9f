#!/usr/bin/env bash
# benchmarks/spos_nb201.py on the GPU machine (device tool), in calls of < 10 min that resume.
# From the repo root, with wheels in .whl/, the dataset in .data/cifar10-jpeg.tar.gz and the
# NB201 table in .data/nb201_cifar10_hw.csv.gz.  ARGS="--set supernet.epochs=50" etc.
set -u
. benchmarks/_gpu_env.sh
D=$PWD/.spos  # ignored: kept on a warm machine, so a second call resumes the studies
(nvidia-smi dmon -s u -d 5 > $OUT/dmon-spos.log 2>&1 &)
cd benchmarks
timeout -s INT ${SECONDS_LEFT:-530} python3 spos_nb201.py --data ../.data/cifar10-jpeg.tar.gz \
  --table ../.data/nb201_cifar10_hw.csv.gz --out $D --tag ${TAG:-h200} ${ARGS:-} 2>&1 | tail -60
cd ..
pkill -f "nvidia-smi dmon"
new_results "*spos_nb201*.json"
for s in spos tau; do
  [ -d $D/$s ] || continue
  mkdir -p $OUT/$s
  grep -v 'trial .* complete' $D/$s/hwnas.log | tail -120 > $OUT/$s/hwnas.log
done
ls -la $OUT
