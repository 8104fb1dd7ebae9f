#!/usr/bin/env bash
# Latency table and predictor against the machine's own noise floor (issue "Trust", item 9):
# the chain space on digits (1x8x8) and at CIFAR-10 shapes (3x32x32), cpu-ort, 1 thread.
#   bash benchmarks/cost_noise.sh [CIFAR_ARCHIVE] [OUT_DIR]
# Prints one JSON per run (lut eval: 100 held-out archs, best of 3 sweeps; predictor: 600
# measured archs, 500 to train, the 100 held out measured twice) into OUT_DIR.
set -eu
DATA=${1:-.data/cifar10-jpeg.tar.gz}
OUT=${2:-${OUT:-/tmp/cost_noise}}
mkdir -p "$OUT"
W=$(mktemp -d)
run() {  # name, extra --set arguments
  local name=$1; shift
  python3 -m hwnas.cli lut eval --config configs/digits.yaml "$@" --n 100 --dir "$W/lut-$name" -q \
    > "$OUT/lut-$name.json"
  python3 -m hwnas.cli predictor train --config configs/digits.yaml "$@" --n 600 --train-size 500 \
    -o "$W/pred-$name.npz" -q > "$OUT/predictor-$name.json"
  echo "$name: lut $(python3 -c "import json;d=json.load(open('$OUT/lut-$name.json'));print(d['within_10pct'],'noise',d['noise_floor_within_10pct'])") predictor $(python3 -c "import json;d=json.load(open('$OUT/predictor-$name.json'));print(d['within_10pct'],'noise',d['noise_floor_within_10pct'])")"
}
run digits
run cifar10 --set data.name=cifar10 --set "data.path=$DATA"
python3 -c "import os; from hwnas.hardware.host import cpu_model; print(cpu_model(), os.cpu_count(), 'cores')" > "$OUT/machine.txt"
rm -rf "$W"
