#!/usr/bin/env bash
# The demo: builds examples/simulated_job (Release) in build/demo and runs it.
# Installs missing build dependencies with apt-get first (scripts/deps.sh).
# Arguments are passed to the demo.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
jobpoll_install_deps

cmake -S . -B build/demo -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DJOBPOLL_BUILD_TESTS=OFF -DJOBPOLL_BUILD_EXAMPLES=ON -DJOBPOLL_BUILD_BENCH=OFF
cmake --build build/demo --target simulated_job --parallel "${JOBS:-$(nproc)}"
echo
exec build/demo/examples/simulated_job "$@"
