#!/usr/bin/env bash
# airbench's own airbench94.py, unmodified, as an outside reference on the GPU machine (device
# tool), on the same CIFAR-10 (JPEG) images hwnas trains on. Nothing of it enters the project:
# put an unmodified copy of airbench94.py (github.com/KellerJordan/cifar10-airbench) in the
# ignored folder .airbench/ and carry it with .data/.
#   bash benchmarks/gpu_airbench_reference.sh   # prints its per-run table; the log goes to $OUT
set -u
OUT=${OUT:-/tmp/out}
python3 -c "import torchvision" || { echo "airbench94.py needs torchvision"; exit 2; }
python3 benchmarks/cifar_pt.py .data/cifar10-jpeg.tar.gz .airbench/cifar10
cd .airbench
timeout ${SECONDS_LEFT:-240} python3 airbench94.py > $OUT/airbench94-own-script.log 2>&1
echo "rc $?"
grep -E "eval|Mean" $OUT/airbench94-own-script.log
