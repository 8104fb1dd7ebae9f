#!/usr/bin/env bash
# Ray for the GPU machine (device tool), which has no Ray: its wheel (79 MB) is larger than one
# call may carry (64 MiB), so it travels in two parts over two calls while the machine stays
# warm (benchmarks/gpu_ray.sh). Run here, from the repo root; writes the ignored .rayw/:
#   .rayw/a/: the wheel's first 40 MB;  .rayw/b/: the rest, and Ray's dependencies the GPU
#   machine's image lacks (jsonschema and its own; the image has click, msgpack, protobuf, ...).
set -eu
RAY=${RAY:-2.60.0}
W=$(mktemp -d)
get() {
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    -d "$W" "$@"
}
get "ray==$RAY" jsonschema jsonschema-specifications referencing rpds-py
rm -rf .rayw && mkdir -p .rayw/a .rayw/b
whl=$(basename "$W"/ray-*.whl)
sha256sum "$W/$whl" | cut -d' ' -f1 > ".rayw/b/$whl.sha256"  # checked after joining
split -b 40000000 -d "$W/$whl" ".rayw/part-"
mv .rayw/part-00 ".rayw/a/$whl.part-00"
mv .rayw/part-01 ".rayw/b/$whl.part-01"
rm "$W/$whl"
mv "$W"/*.whl .rayw/b/
rm -rf "$W"
du -sh .rayw/a .rayw/b
