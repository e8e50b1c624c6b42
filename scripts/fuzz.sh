#!/usr/bin/env bash
# Builds the libFuzzer targets of the parsers (tests/fuzz: fuzz_config, fuzz_idx, fuzz_cifar;
# clang, with AddressSanitizer and UndefinedBehaviorSanitizer) over the ordinary build's
# libbll.a, in build-fuzz/, and runs them.
#   scripts/fuzz.sh [SECONDS]            every regression input once, then each target for SECONDS
#                                        (default 20) from its corpus: ctest -L fuzz (scripts/test.sh)
#   scripts/fuzz.sh --runs N [TARGET...] a long run: N executions of each target (default all),
#                                        one after another; prints libFuzzer's final statistics
# A crash leaves its input in build-fuzz/crash-<target>-*; once fixed, copy it into
# tests/fuzz/regressions/<target>/ so that every later run replays it. BLL_FUZZ_BUILD picks
# another build folder (two long runs at once).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$root/build/libbll.a" ] || "$root/scripts/build.sh"
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found; run scripts/install_deps.sh" >&2; exit 2; }
seconds=20
if [ "${1:-}" != "--runs" ]; then seconds=${1:-20}; fi
build=${BLL_FUZZ_BUILD:-$root/build-fuzz}
cmake -S "$root/tests/fuzz" -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DBLL_LIBRARY="$root/build/libbll.a" -DBLL_FUZZ_SECONDS="$seconds" >/dev/null
cmake --build "$build" -j"$(nproc)"
cd "$build"
if [ "${1:-}" = "--runs" ]; then
  runs=$2; shift 2
  targets=("$@")
  [ ${#targets[@]} -gt 0 ] || targets=(config idx cifar)
  for t in "${targets[@]}"; do
    seeds=("$root/tests/fuzz/corpus/$t" "$root/tests/fuzz/regressions/$t")
    [ "$t" = config ] && seeds+=("$root/configs")
    echo "fuzz.sh: fuzz_$t, $runs executions"
    rc=0
    ASAN_OPTIONS=detect_leaks=1 ./"fuzz_$t" -runs="$runs" -rss_limit_mb=4096 -print_final_stats=1 \
      -artifact_prefix="$build/crash-$t-" "corpus-$t" "${seeds[@]}" >"fuzz_$t.log" 2>&1 || rc=$?
    grep -E '^(stat::|Done|SUMMARY|==[0-9]+==ERROR)' "fuzz_$t.log" || true
    [ "$rc" -eq 0 ] || { echo "fuzz.sh: fuzz_$t found a crash ($build/crash-$t-*, $build/fuzz_$t.log)" >&2; exit 1; }
  done
  exit 0
fi
ctest -L fuzz --output-on-failure
