#!/usr/bin/env bash
# Builds jobpoll's benchmarks (Release, -O2, -Werror; the default compiler, g++) in build-bench/ and
# runs them, each against its hand-written Asio baseline in the same process,
# then prints every ratio once more at the end. About 20-25 minutes on 2 cores
# (batch_bench about 17 minutes of it: 1,000,000 jobs, and an fsync per
# change at 100,000), plus job_load (about 2 minutes).
#
#   scripts/bench.sh                      all nine
#   scripts/bench.sh poll_overhead ...    a subset: poll_overhead, many_pollers, limiter_throughput,
#                                         curl_transport (against the loopback job server),
#                                         batch_bench (the batch runner on its SQLite store, in memory,
#                                         in a file, fsynced, against job_client alone; 100,000 and
#                                         1,000,000 jobs),
#                                         job_load (1,000 and 10,000 jobs: jobpoll vs plain libcurl
#                                         multi vs Python aiohttp+tenacity, each its own process;
#                                         and jobpoll over HTTP/2 vs HTTP/1.1 against a hypercorn server),
#                                         codec_bench (json_codec's depth-limited decode and bounded
#                                         previews vs nlohmann alone),
#                                         store_changes (postgres_store vs sqlite_store: state changes/s
#                                         and CPU per change, 1 and 3 runners),
#                                         redis_limiter_bench (redis_limiter vs the in-process limiter:
#                                         acquires/s, added latency; 1 and 4 processes)
#
# REPS=<n> sets the Google Benchmark repetitions (default 5; medians are
# compared); MANY_REPS=<n> the fresh-process runs per many_pollers
# configuration (default 3); BATCH_REPS=<n> those per batch_bench way at
# 100,000 jobs (default 3; 1,000,000 jobs run once); LOAD_REPS=<n> the runs per job_load client and size
# (default 3; medians are compared), LOAD_JOBS=<list> its sizes (default 1000,10000). Full outputs:
# build-bench/<name>.txt.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/deps.sh
source scripts/deps.sh

reps=${REPS:-5}
many_reps=${MANY_REPS:-3}
batch_reps=${BATCH_REPS:-3}
load_reps=${LOAD_REPS:-3}
load_jobs=${LOAD_JOBS:-1000,10000}
dir=build-bench
all=(poll_overhead many_pollers limiter_throughput curl_transport batch_bench job_load codec_bench store_changes
  redis_limiter_bench)
selected=("$@")
((${#selected[@]})) || selected=("${all[@]}")
for name in "${selected[@]}"; do
  case $name in poll_overhead | many_pollers | limiter_throughput | curl_transport | batch_bench | job_load | codec_bench | store_changes | redis_limiter_bench) ;; *) echo "unknown benchmark '$name' (${all[*]})" >&2; exit 2 ;; esac
done

header() { printf '\n==== %s ====\n' "$*"; }

header "dependencies"
jobpoll_install_deps

header "configure and build ($dir, Release -O2)"
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" -DJOBPOLL_BUILD_BENCH=ON -DJOBPOLL_BUILD_TESTS=OFF \
  -DJOBPOLL_BUILD_EXAMPLES=OFF -DJOBPOLL_INSTALL=OFF -DJOBPOLL_WERROR=ON >/dev/null
cmake --build "$dir" --parallel "$(nproc)" --target "${selected[@]}"

# Random interleaving runs the repetitions of different benchmarks in a mixed
# order, so a burst of load from elsewhere does not land on one side of a ratio.
gbench_flags=(--benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true
  --benchmark_enable_random_interleaving=true)

summary=()
for name in "${selected[@]}"; do
  header "$name"
  out="$dir/$name.txt"
  start=$SECONDS
  if [[ $name == many_pollers ]]; then
    "$dir/bench/$name" --reps="$many_reps" | tee "$out"
  elif [[ $name == batch_bench ]]; then
    "$dir/bench/$name" --reps="$batch_reps" | tee "$out"
  elif [[ $name == store_changes || $name == redis_limiter_bench ]]; then
    # Their own mains: they start a PostgreSQL cluster / redis-server themselves.
    "$dir/bench/$name" | tee "$out"
  elif [[ $name == job_load ]]; then
    "$dir/bench/$name" --reps="$load_reps" --jobs="$load_jobs" | tee "$out"
  else
    "$dir/bench/$name" "${gbench_flags[@]}" | tee "$out"
  fi
  summary+=("--- $name ($((SECONDS - start)) s)")
  mapfile -t -O "${#summary[@]}" summary < <(sed -n '/^ratios/,$p' "$out")
done

header "summary ($SECONDS s in all)"
printf '%s\n' "${summary[@]}"
