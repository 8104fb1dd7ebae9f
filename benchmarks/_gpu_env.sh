# Sourced (from the repo root) by the gpu_*.sh scripts: the GPU machine reaches no package
# registry, so the wheels carried in .whl/ go into /tmp/site, and every hwnas run there gets
# the same environment. OUT is the device tool's folder of files that come back.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD/src:$PWD/benchmarks PYTHONUNBUFFERED=1 HWNAS_CACHE=/tmp/hwnas-cache
OUT=${OUT:-/tmp/out}
# Results this call wrote: the checkout carries every earlier result too, and the device
# tool brings back at most 8 files (six old ones once crowded out a study's logs).
touch /tmp/.call-start
new_results() {  # glob under benchmarks/results/ -> $OUT
  find benchmarks/results -maxdepth 1 -name "$1" -newer /tmp/.call-start -exec cp {} "$OUT"/ \;
}
