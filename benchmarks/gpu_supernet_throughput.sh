#!/usr/bin/env bash
# benchmarks/supernet_throughput.py on the GPU machine (device tool), with GPU utilisation.
set -u
. benchmarks/_gpu_env.sh
(nvidia-smi dmon -s u -d 1 > $OUT/dmon-throughput.log 2>&1 &)
cd benchmarks
timeout -s INT ${SECONDS_LEFT:-400} python3 supernet_throughput.py --tag ${TAG:-h200} ${ARGS:-} 2>&1 | grep -v '^ \|^{\|^}' | tail -20
cd ..
pkill -f "nvidia-smi dmon"
new_results "*supernet_throughput*.json"
ls $OUT
