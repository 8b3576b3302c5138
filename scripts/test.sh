#!/usr/bin/env bash
# The one test command: builds and tests jobpoll three ways on Debian 12.
#   1. g++ Release (-O2 -DNDEBUG), -Werror, tests + examples + benchmarks built
#      (benchmarks not run), ctest
#   2. g++ Debug with AddressSanitizer + UndefinedBehaviorSanitizer, -Werror, ctest
#   3. clang++ Debug, -Werror, ctest
# Installs missing build dependencies with apt-get first (scripts/deps.sh).
# Build trees: build/ci-gcc, build/ci-gcc-asan, build/ci-clang.
# Run a subset with e.g. `scripts/test.sh clang`; JOBS=<n> overrides $(nproc).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
# shellcheck source=scripts/deps.sh
source scripts/deps.sh

jobs=${JOBS:-$(nproc)}
stages=("$@")
((${#stages[@]})) || stages=(gcc gcc-asan clang)
for stage in "${stages[@]}"; do
  case $stage in gcc | gcc-asan | clang) ;; *) echo "unknown stage '$stage' (gcc, gcc-asan, clang)" >&2; exit 2 ;; esac
done

# Read only by sanitized binaries. detect_stack_use_after_return catches a
# coroutine that keeps a reference to a frame that has returned.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

header() { printf '\n==== %s ====\n' "$*"; }

summaries=()
total_passed=0
total_failed=0

# run_stage NAME CXX -D... : configure, build everything, run ctest.
run_stage() {
  local name=$1 cxx=$2
  shift 2
  local dir="build/ci-$name" start=$SECONDS log
  header "stage $name: configure ($cxx)"
  cmake -S . -B "$dir" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" \
    -DJOBPOLL_BUILD_TESTS=ON -DJOBPOLL_BUILD_EXAMPLES=ON "$@"
  header "stage $name: build (-j$jobs)"
  cmake --build "$dir" --parallel "$jobs"
  local built=$SECONDS
  header "stage $name: ctest (-j$jobs)"
  log="$dir/ctest-summary.log"
  # --timeout: a default for tests without their own, so a hang fails instead of stalling CI.
  # --no-tests=error: a stage that runs nothing has failed.
  (cd "$dir" && ctest --output-on-failure --no-tests=error --timeout 120 -j"$jobs") | tee "$log"
  local line passed failed
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n1 || true)
  [[ -n $line ]] || { echo "stage $name: no ctest summary line" >&2; exit 1; }
  failed=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$line")
  passed=$(( $(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line") - failed ))
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  summaries+=("$(printf '%-9s build %4ds  ctest %4ds  %s' "$name" $((built - start)) $((SECONDS - built)) "$line")")
}

header "dependencies"
jobpoll_install_deps

for stage in "${stages[@]}"; do
  case $stage in
    gcc)
      # -O2, the level the benchmarks are measured at, rather than CMake's -O3.
      run_stage gcc g++ -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG" \
        -DJOBPOLL_WERROR=ON -DJOBPOLL_BUILD_BENCH=ON
      ;;
    gcc-asan)
      run_stage gcc-asan g++ -DCMAKE_BUILD_TYPE=Debug -DJOBPOLL_SANITIZE=address,undefined -DJOBPOLL_WERROR=ON
      ;;
    clang)
      run_stage clang clang++ -DCMAKE_BUILD_TYPE=Debug -DJOBPOLL_WERROR=ON
      ;;
  esac
done

header "summary ($root, $SECONDS s in all)"
printf '%s\n' "${summaries[@]}"
echo "ctest: $total_passed passed, $total_failed failed"
