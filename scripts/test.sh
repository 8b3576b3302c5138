#!/usr/bin/env bash
# The one test command: builds and tests jobpoll on Debian 12, with both
# compilers, with and without sanitizers, on both Asio backends.
#   1. gcc: g++ Release (-O2 -DNDEBUG), -Werror, tests + examples + benchmarks
#      built (benchmarks not run), ctest; the unit and integration tests
#      themselves at -O0 (a quarter less build time than -O1, measured on
#      job_client_test: 21.4 s vs 28.0 s; what users compile, the examples,
#      the tool, the benchmarks and the README snippets, stays -O2);
#      on standalone Asio (the default backend); its compile-time checks
#      include the Boost.Asio header check and the Boost.Asio package consumers
#   2. clang-asan-boost: clang++ Debug (line tables only) with AddressSanitizer +
#      UndefinedBehaviorSanitizer, -Werror, ctest, on Boost.Asio
#      (JOBPOLL_ASIO_BACKEND=boost); without the compile-time checks (README
#      snippets, header and package checks, compile-fail tests: the gcc stage
#      has them). One stage for the second compiler, the sanitizers and the
#      second backend: the whole suite runs on each backend, and a third full
#      build (about 10 minutes on 2 cores) would not fit in the 25 minutes a
#      CI run may take.
#   3. fuzz: the libFuzzer targets of tests/fuzz (clang++, ASan + UBSan), each
#      run for FUZZ_SECONDS (12) on a copy of its committed corpus, two at a
#      time; prints each target's executions; any crash fails the stage
# Installs missing build dependencies with apt-get first (scripts/deps.sh).
# Build trees: build/ci-gcc, build/ci-clang-asan-boost, build/ci-fuzz.
# Run a subset with e.g. `scripts/test.sh clang-asan-boost`; JOBS=<n> overrides $(nproc).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
# shellcheck source=scripts/deps.sh
source scripts/deps.sh

jobs=${JOBS:-$(nproc)}
stages=("$@")
((${#stages[@]})) || stages=(gcc clang-asan-boost fuzz)
for stage in "${stages[@]}"; do
  case $stage in
    gcc | clang-asan-boost | fuzz) ;;
    *) echo "unknown stage '$stage' (gcc, clang-asan-boost, fuzz)" >&2; exit 2 ;;
  esac
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
  summaries+=("$(printf '%-16s build %4ds  ctest %4ds  %s' "$name" $((built - start)) $((SECONDS - built)) "$line")")
}

# run_fuzz_stage: configure and build the fuzz targets, run each for
# FUZZ_SECONDS on a temporary copy of tests/fuzz/corpus/<target> (the
# committed corpus is never changed), two at a time; fails on any crash.
run_fuzz_stage() {
  local dir=build/ci-fuzz start=$SECONDS seconds=${FUZZ_SECONDS:-12}
  # Every tests/fuzz/*_fuzz.cpp is a target (tests/fuzz/CMakeLists.txt builds them all).
  local targets=() source
  for source in tests/fuzz/*_fuzz.cpp; do targets+=("$(basename "$source" .cpp)"); done
  header "stage fuzz: configure (clang++)"
  cmake -S . -B "$dir" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DJOBPOLL_BUILD_FUZZERS=ON -DJOBPOLL_WERROR=ON -DJOBPOLL_BUILD_TESTS=OFF -DJOBPOLL_BUILD_EXAMPLES=OFF \
    -DJOBPOLL_BUILD_TOOLS=OFF -DJOBPOLL_INSTALL=OFF
  header "stage fuzz: build (-j$jobs)"
  cmake --build "$dir" --parallel "$jobs" --target "${targets[@]}"
  local built=$SECONDS work
  work=$(mktemp -d "${TMPDIR:-/tmp}/jobpoll-fuzz.XXXXXX")
  header "stage fuzz: ${#targets[@]} targets, ${seconds}s each, two at a time (work dir $work)"
  local t running=0
  for t in "${targets[@]}"; do
    # Two slots: the next target starts as soon as one ends.
    if ((running == 2)); then
      wait -n
      running=$((running - 1))
    fi
    cp -r "tests/fuzz/corpus/$t" "$work/$t"
    mkdir "$work/$t.crashes"
    # Each run's exit status goes to a file: a crash must not stop the other runs.
    ( rc=0
      "$dir/tests/fuzz/$t" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$work/$t.crashes/" "$work/$t" >"$work/$t.log" 2>&1 || rc=$?
      echo "$rc" >"$work/$t.status" ) &
    running=$((running + 1))
  done
  wait
  local crashed=0 report=() execs
  for t in "${targets[@]}"; do
    execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$work/$t.log" | tail -n1)
    if [[ $(cat "$work/$t.status") != 0 ]]; then
      crashed=$((crashed + 1))
      report+=("$t CRASHED")
      echo "---- $t crashed (reproducer in $work/$t.crashes):" >&2
      tail -n 40 "$work/$t.log" >&2
    else
      report+=("$t ${execs:-?}")
      echo "$t: ${execs:-?} executions in ${seconds}s"
    fi
  done
  local joined
  joined=$(printf '%s, ' "${report[@]}")
  summaries+=("$(printf '%-16s build %4ds  fuzz  %4ds  %s crashed; executions: %s' fuzz $((built - start)) \
    $((SECONDS - built)) "$crashed" "${joined%, }")")
  if ((crashed)); then
    total_failed=$((total_failed + crashed))
    echo "stage fuzz: $crashed target(s) crashed; reproducers and logs in $work" >&2
  else
    rm -rf "$work"
  fi
}

header "dependencies"
jobpoll_install_deps

for stage in "${stages[@]}"; do
  case $stage in
    gcc)
      # -O2, the level the benchmarks are measured at, rather than CMake's -O3.
      # The tests at -O0: the CI run must stay under 25 minutes on 2 cores
      # (at -O1 it took 1507 s of stages, 25m07s in all, at e9dd6a8).
      run_stage gcc g++ -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG" \
        -DJOBPOLL_WERROR=ON -DJOBPOLL_BUILD_BENCH=ON -DJOBPOLL_TEST_COMPILE_OPTIONS=-O0
      ;;
    clang-asan-boost)
      # Without the compile-time checks (README snippets, header and package
      # checks, compile-fail tests): the gcc stage has them, and building them
      # again here would take minutes of a CI run that must stay under 25.
      # -gline-tables-only: the sanitizers' reports need file and line, not
      # the variables' debug info (job_client_test: 18.7 s to compile instead
      # of 27.3 s with -g).
      run_stage clang-asan-boost clang++ -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-gline-tables-only \
        -DJOBPOLL_SANITIZE=address,undefined \
        -DJOBPOLL_WERROR=ON -DJOBPOLL_BUILD_COMPILE_CHECKS=OFF -DJOBPOLL_ASIO_BACKEND=boost
      ;;
    fuzz)
      run_fuzz_stage
      ;;
  esac
done

header "summary ($root, $SECONDS s in all)"
printf '%s\n' "${summaries[@]}"
echo "ctest: $total_passed passed, $total_failed failed (crashed fuzz targets count as failed)"
((total_failed == 0))
