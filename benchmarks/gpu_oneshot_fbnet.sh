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
# each study's log, front and trials in one archive: the device tool brings back at most 8
# files, and five studies' three files each were cut to one
kept=()
for s in latency macs targets ref mac-targets; do
  [ -d $D/$s ] || continue
  python3 -m hwnas.cli show $D/$s --json > $D/$s/trials.json 2>/dev/null
  for f in hwnas.log pareto.json trials.json; do [ -f $D/$s/$f ] && kept+=("$s/$f"); done
done
[ ${#kept[@]} -gt 0 ] && tar czf $OUT/studies.tgz -C $D "${kept[@]}"
ls -la $OUT
