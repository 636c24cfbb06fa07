#!/usr/bin/env bash
# Builds the CUDA GEMM for sm_90a with nvcc alone (the GPU machine has no fmt/json/GoogleTest, so this does not go
# through the top-level CMake project), runs every GPU check (tests/cuda/gemm-checks.h via gpu-check-main.cu) and
# the benchmark (bench/gemm.cu), and prints a short table last.
#   scripts/gpu-check.sh [--quick] [--no-bench] [--build-only] [--sanitize] [--trace]
# --trace: a diagnostic build instead (-DRTNQ_SWAP_TRACE, its own object folder) that prints, per call of a graph of
# back-to-back calls, where the time goes (bench-gemm --trace) for the four 8B linears at m = 1 and 16; no checks.
# Logs, bench-gemm's gemm.md / gemm.json go to $OUT when set (the lent GPU machine), else build/gpu-check/.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-build/gpu-check}"
bld=build/gpu-check-obj
quick=""; bench=1; build_only=0; sanitize=0; trace=0
for a in "$@"; do
  case "$a" in
    --trace) trace=1 ;;
    --quick) quick="--quick" ;;
    --no-bench) bench=0 ;;
    --build-only) build_only=1 ;;
    --sanitize) sanitize=1 ;;
    *) echo "unknown flag $a" >&2; exit 2 ;;
  esac
done
arch="${RTNQ_CUDA_GENCODE:--gencode=arch=compute_90a,code=sm_90a}"
flags=(-std=c++20 -O3 "$arch" -Isrc -Iinclude -Itests/cuda -Xptxas=-v)
if [ $trace = 1 ]; then bld=build/gpu-check-trace-obj; flags+=(-DRTNQ_SWAP_TRACE); fi
mkdir -p "$out" "$bld"
lib_srcs=(src/cuda/*.cu)
srcs=("${lib_srcs[@]}" tests/cuda/gpu-check-main.cu bench/gemm.cu)
echo "== build ($(nvcc --version | tail -1))"
pids=()
for s in "${srcs[@]}"; do
  o="$bld/$(echo "$s" | tr / _).o"
  nvcc "${flags[@]}" -c "$s" -o "$o" >"$o.log" 2>&1 &
  pids+=($!)
done
fail=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then echo "compile failed: ${srcs[$i]}"; cat "$bld/$(echo "${srcs[$i]}" | tr / _).o.log"; fail=1; fi
done
cat "$bld"/*.log > "$out/build.log"
[ $fail = 0 ] || exit 1
lib=()
for s in "${lib_srcs[@]}"; do lib+=("$bld/$(echo "$s" | tr / _).o"); done
nvcc "$arch" "${lib[@]}" "$bld"/tests_cuda_gpu-check-main.cu.o -lcublas -o "$bld/gpu-check" || exit 1
nvcc "$arch" "${lib[@]}" "$bld"/bench_gemm.cu.o -lcublas -ldl -o "$bld/bench-gemm" || exit 1
echo "kernel resources:"; grep -A2 -E "gemm_quant_kernel|gemm_decode_kernel|gemm_swap_kernel|gemm_strip_kernel|gemm_wide_kernel" "$out/build.log" | grep -E "registers|spill" | sort | uniq -c
[ $build_only = 1 ] && exit 0
if [ $trace = 1 ]; then
  for m in 1 16; do
    for shape in 4096,6144 4096,4096 4096,28672 14336,4096; do
      f="$out/trace-${shape/,/x}-$m.md"
      "$bld/bench-gemm" --trace "$shape,$m" > "$f" 2>&1 || { cat "$f"; exit 1; }
      head -1 "$f"; sed -n '2,3p;5,7p' "$f"; tail -1 "$f"
    done
  done
  exit 0
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1 | tee "$out/gpu.txt"
echo "== checks"
"$bld/gpu-check" > "$out/checks.log" 2>&1
check_rc=$?
grep -E "^FAIL" "$out/checks.log" | head -40
tail -1 "$out/checks.log"
if [ "$sanitize" = 1 ]; then
  # memcheck over a reduced set (every bits x dtype x path, shapes up to 4096 x 4096, m <= 300): out-of-bounds
  # and misaligned accesses, and any device-side fault, reported with the faulting kernel and address.
  echo "== compute-sanitizer memcheck (reduced set)"
  timeout 240 compute-sanitizer --tool memcheck --print-limit 20 "$bld/gpu-check" --max-m 300 --max-nk 16777216 \
    > "$out/sanitizer.log" 2>&1
  echo "memcheck rc=$?"; grep -E "ERROR SUMMARY|^FAIL|Invalid|illegal|Illegal" "$out/sanitizer.log" | head -20
  tail -1 "$out/sanitizer.log"
fi
bench_rc=0
if [ $bench = 1 ]; then
  echo "== bench"
  "$bld/bench-gemm" "$out" $quick 2> "$out/bench.log" > "$out/bench.out"
  bench_rc=$?
  tail -5 "$out/bench.log"
  echo "== summary"
  grep -E "^# |4 linears|^\| model|^\|---" "$out/bench.out"
  grep -E "\| (70B|405B) .*\| 1 \|" "$out/bench.out"
  grep "crossover" "$out/bench.out"
  sed -n '/kernel variants/,$p' "$out/bench.out"
fi
echo "checks rc=$check_rc bench rc=$bench_rc"
[ $check_rc = 0 ] && [ $bench_rc = 0 ]
