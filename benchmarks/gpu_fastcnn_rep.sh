#!/usr/bin/env bash
# benchmarks/fastcnn_rep.py on the GPU machine (device tool): branched against plain training.
# From the repo root, with wheels in .whl/ and the dataset in .data/cifar10-jpeg.tar.gz.
#   ARGS="--runs 5 --deadline 400": passed on; SECONDS_LEFT bounds the whole script.
set -u
. benchmarks/_gpu_env.sh
(nvidia-smi dmon -s u -d 2 > $OUT/dmon-rep.log 2>&1 &)
cd benchmarks
timeout -s INT ${SECONDS_LEFT:-540} python3 fastcnn_rep.py --data ../.data/cifar10-jpeg.tar.gz \
    --tag ${TAG:-h100} ${ARGS:-} 2>&1 | grep -v '^ \|^{\|^}' | tail -30
cd ..
pkill -f "nvidia-smi dmon"
new_results "*fastcnn_rep*.json"
ls $OUT
