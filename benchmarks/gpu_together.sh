#!/usr/bin/env bash
# Several benchmarks/gpu_*.sh side by side in one device call (one supernet step leaves the
# H200 mostly idle), each with its own environment, every output packed into one archive per
# script: the device tool brings back at most 8 files.
#   bash benchmarks/gpu_together.sh 'SECONDS_LEFT=540 ARGS="--paired --workers 3 --parallel" gpu_oneshot_fbnet.sh' \
#     'SECONDS_LEFT=525 gpu_darts_nb201.sh'
set -u
OUT=${OUT:-/tmp/out}
for job in "$@"; do
  name=$(basename "${job##* }" .sh)
  mkdir -p "/tmp/together/$name"
  (eval "OUT=/tmp/together/$name $(echo "$job" | sed "s|\([^ ]*\.sh\)$|bash benchmarks/\1|")" \
    > "/tmp/together/$name/stdout.txt" 2>&1) &
  sleep ${STAGGER:-15}  # the scripts install the same wheels into /tmp/site: one at a time
done
wait
for d in /tmp/together/*/; do
  name=$(basename "$d")
  tar -czf "$OUT/$name.tar.gz" -C /tmp/together "$name"
  tail -3 "$d/stdout.txt"
done
ls -la "$OUT"
