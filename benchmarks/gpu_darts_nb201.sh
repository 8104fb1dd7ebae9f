#!/usr/bin/env bash
# benchmarks/darts_nb201.py on the GPU machine (device tool), in one call of < 10 min: the
# seeds run side by side on the one GPU. From the repo root, with wheels in .whl/, the
# dataset in .data/cifar10-jpeg.tar.gz and the NB201 table in .data/nb201_cifar10_hw.csv.gz.
#   VARIANT=darts SEEDS=0 to show DARTS's collapse; ARGS="--set supernet.search_epochs=25"
# The studies come back as $OUT/dnb.tgz.part-* (15 MB pieces: the tool brings back files of at
# most 16 MiB): carry them in .dnbparts/ and a call on a fresh machine resumes them (the
# supernet checkpoints inside), as a second call on a warm one does. Measured on an H100 with
# 3 seeds side by side (SM busy 95-99 %): GDAS ~21 s per epoch (250 epochs: ~90 device-minutes);
# VARIANT=beta (softmax mixing, replayed as CUDA graphs: supernet.cuda_graphs) 40 s per epoch
# with 3 seeds, 26.6 s with 2, 15.4 s for one alone (50 epochs: 13 minutes). One seed's study
# is ~19 MB of tarball; only this call's seeds come back, and a call may carry 64 MiB in all
# beside .whl and .data, so a run that spans fresh machines carries one seed at a time (its
# parts, or a tarball made by tar czf x.tgz .dnb/beta-seed0 .dnb/beta-seed0.log, in .dnbparts/).
set -u
. benchmarks/_gpu_env.sh
SEEDS=${SEEDS:-0,1,2} VARIANT=${VARIANT:-gdas}
D=$PWD/.dnb   # ignored: kept on a warm machine, so a second call resumes the studies
# carried studies join those a warm machine holds: a seed's study already here is kept
# (every file in .dnbparts/, in name order: split parts, or whole tarballs one after another)
shopt -s nullglob
carried=(.dnbparts/*)
if [ ${#carried[@]} -gt 0 ]; then
  rm -rf /tmp/dnbx && mkdir -p /tmp/dnbx $D && cat "${carried[@]}" | tar xzi -C /tmp/dnbx
  for f in /tmp/dnbx/.dnb/*; do [ -e "$D/$(basename "$f")" ] || mv "$f" $D/; done
fi
(nvidia-smi dmon -s u -d 5 > $OUT/dmon-darts.log 2>&1 &)
cd benchmarks
timeout -s INT ${SECONDS_LEFT:-530} python3 darts_nb201.py --data ../.data/cifar10-jpeg.tar.gz \
  --table ../.data/nb201_cifar10_hw.csv.gz --out $D --seeds $SEEDS \
  --variant $VARIANT --tag ${TAG:-h200} ${ARGS:-} 2>&1 | tail -40
cd ..
pkill -f "nvidia-smi dmon"
# at most 8 files come back: this run's result, one log of every seed, the studies
new_results "*darts_nb201*.json"
for f in $D/*.log; do echo "== $f"; tail -30 $f; done > $OUT/seeds.log
for d in $D/*/; do echo "== $d"; grep -h 'supernet search' $d/hwnas.log | tail -3; done >> $OUT/seeds.log
mine=""  # this call's seeds only
for s in ${SEEDS//,/ }; do mine="$mine .dnb/$VARIANT-seed$s .dnb/$VARIANT-seed$s.log"; done
tar cz $mine | split -b 15m - $OUT/dnb.tgz.part-
ls -la $OUT
