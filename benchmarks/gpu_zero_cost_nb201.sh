#!/usr/bin/env bash
# benchmarks/zero_cost_nb201.py on the GPU machine (device tool): the proxies' rank
# correlations over many archs (seconds per arch are the CPU run's to quote).
set -u
. benchmarks/_gpu_env.sh
cd benchmarks
python3 zero_cost_nb201.py --data ../.data/cifar10-jpeg.tar.gz --table ../.data/nb201_cifar10_hw.csv.gz \
  --device cuda --tag ${TAG:-h200} ${ARGS:-} 2>&1 | grep -v '^ \|^{\|^}' | tail -30
cd ..
new_results "*zero_cost_nb201*.json"
ls $OUT
