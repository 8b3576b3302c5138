#!/usr/bin/env bash
# The demo: builds the `jobpoll` command-line tool (Release, build/demo),
# starts the demo job server on a free loopback port, and polls two real
# jobs over HTTP with it:
#   1. the reporting export of seed 001 (POST /transaction/load-job, poll
#      get-job-data every 2 s until "pass", collect every page), under the
#      API's quota of 20 requests per 15 s, which the server enforces too;
#   2. a job of the seed-004 job API (POST /v1/jobs, Location handle,
#      progress and an ETA hint), with a 503 burst the poll rides out;
#   3. a batch of 40 jobs (examples/batch_run), interrupted by SIGINT after
#      3 s and run again: it resumes from its SQLite store, polling the jobs
#      that were running by their handles instead of submitting them again;
#      `batch_run status` then reads the batch from the store.
# Progress goes to stderr, each result to stdout as JSON. The server is
# stopped on exit. Installs missing build dependencies with apt-get first.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
jobpoll_install_deps

cmake -S . -B build/demo -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DJOBPOLL_BUILD_TESTS=OFF -DJOBPOLL_BUILD_EXAMPLES=ON -DJOBPOLL_BUILD_BENCH=OFF -DJOBPOLL_BUILD_TOOLS=ON
cmake --build build/demo --target jobpoll_cli batch_run --parallel "${JOBS:-$(nproc)}"
jobpoll=build/demo/tools/jobpoll
batch_run=build/demo/examples/batch_run

# The server prints "PORT <n>" once it listens; --ignore-stdin because a
# background job's stdin is not ours to hold open.
port_file=$(mktemp)
python3 tests/server/job_server.py --port 0 --quota 20/15 --ignore-stdin >"$port_file" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -f "$port_file"' EXIT
for _ in $(seq 100); do
  grep -q '^PORT ' "$port_file" && break
  kill -0 "$server" 2>/dev/null || { echo "demo: the job server did not start" >&2; exit 1; }
  sleep 0.1
done
port=$(awk '/^PORT /{print $2}' "$port_file")
[[ -n $port ]] || { echo "demo: the job server printed no port" >&2; exit 1; }
base="http://127.0.0.1:$port"
echo "demo job server on $base"

# POST a control request to the server (python3 is there already: it runs the server).
control() {
  python3 -c 'import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], sys.argv[2].encode(), {"Content-Type": "application/json"}))' \
    "$base/_control/$1" "$2"
}

echo
echo "== 1. reporting export (seed 001): 22 transactions over 3 pages, 20 requests per 15 s =="
control config '{"working_polls": 3, "total": 22, "page_limit": 10}'
"$jobpoll" \
  --submit "$base/transaction/load-job?startDate={start}&endDate={end}&site={site}" \
  --param start=1591040159 --param end=1591126559 --param site=MAIN \
  --handle-pointer /data/hash \
  --poll "$base/transaction/get-job-data?hash={handle}" \
  --status-pointer /data/status --success pass --failure fail --pending working \
  --page-url "$base/transaction/get-job-data?hash={handle}&offset={offset}&limit={limit}" \
  --items-pointer /data/data --total-pointer /data/total --page-size 10 --first-page-in-poll \
  --interval 2s --timeout 300s --rate 20/15s "$@" | python3 -c '
import json, sys
items = json.load(sys.stdin)
print(f"{len(items)} transactions, first {items[0]}, last {items[-1]}")'

echo
echo "== 2. job API (seed 004): progress, an ETA hint, and three 503s on the way =="
control script '{"method": "GET", "path": "/v1/jobs/job-1", "responses": [
  {"status": 503, "headers": {"Retry-After": "1"}, "body": "<html>maintenance</html>"},
  {"status": 503, "body": "<html>maintenance</html>"},
  {"status": 503, "body": "<html>maintenance</html>"}]}'
"$jobpoll" \
  --submit "$base/v1/jobs" --data '{"tool": "align", "params": {"reads": 1000}, "steps": 4, "eta_seconds": 1}' \
  --handle-pointer /job_id --poll '/v1/jobs/{handle}' --cancel-url '/v1/jobs/{handle}' \
  --status-pointer /status --success completed --failure failed,cancelled --pending pending,running \
  --progress-pointer /progress --hint-pointer /eta_seconds --failure-detail-pointer /error \
  --result-pointer /result --interval 2s --timeout 60s "$@"

echo
echo "== 2b. Google long-running operation, described by a preset file; then one that fails =="
"$jobpoll" --describe examples/presets/google_lro.json --param "base=$base" --interval 500ms --timeout 60s "$@"
status=0
"$jobpoll" --submit "$base/v1/lro/operations" --data '{"steps": 2, "outcome": "fail"}' \
  --handle-pointer /name --poll '/v1/lro/{+handle}' \
  --status-pointer /done --success true --pending false --failure-if-present /error \
  --failure-detail-pointer /error/message --progress-pointer /metadata/progressPercent --progress-scale 100 \
  --result-pointer /response --interval 500ms --timeout 60s "$@" || status=$?
echo "(the failed operation exits with $status: 1 is 'the job failed')"

echo
echo "== 2c. EBI-style dispatcher: a form submit, plain-text id, statuses and result =="
"$jobpoll" --submit "$base/ebi/run" --form email=demo@example.org --form sequence=ACGTACGT \
  --codec text --handle-pointer '' --poll '/ebi/status/{handle}' \
  --status-pointer '' --success FINISHED --failure FAILURE,ERROR --pending QUEUED,RUNNING \
  --result-url '/ebi/result/{handle}/out' --interval 500ms --timeout 60s "$@"

echo
echo "== 3. a batch of 40 jobs, 6 at a time: SIGINT after 3 s, then the same command resumes it =="
control config '{"quota": null}'
state=$(mktemp -d)
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$port_file" "$state"' EXIT
store=("--store" "$state/batch.db")
batch=("$batch_run" --server "$base" --jobs 40 --steps 8 --interval 250ms --concurrency 6 --grace 0 "${store[@]}")
"${batch[@]}" &
batch_pid=$!
sleep 3
kill -INT "$batch_pid"
status=0
wait "$batch_pid" || status=$?
echo "(stopped with exit code $status: jobs left for a resume)"
echo "-- run again --"
"${batch[@]}"
echo "-- the batch as its store holds it (batch_run status) --"
"$batch_run" "${store[@]}" status
results=$("$batch_run" "${store[@]}" results | wc -l)
changes=$("$batch_run" "${store[@]}" history | wc -l)
echo "($results results kept in the store, $changes changes in its history)"
