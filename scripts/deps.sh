# shellcheck shell=bash
# Sourced by scripts/test.sh and scripts/demo.sh: installs, with apt-get, the
# Debian 12 packages that building and testing jobpoll needs, and nothing
# when they are all there already.

# The one list of system packages jobpoll's build, tests, examples, tool and
# benchmarks use. Add new dependencies here.
JOBPOLL_APT_PACKAGES=(
  g++                 # the main compiler (pulls libc6-dev, libstdc++-12-dev)
  clang               # the second compiler
  cmake
  ninja-build
  libasio-dev         # standalone Asio 1.22.1, the default backend
  libboost1.81-dev    # Boost.Asio 1.26 (Boost 1.81), the second backend (jobpoll::jobpoll-boost-asio), and Beast
  libgtest-dev
  libgmock-dev
  libbenchmark-dev
  libcurl4-openssl-dev  # jobpoll::curl, the HTTP transport (libcurl 7.88, OpenSSL 3, HTTP/2)
  nlohmann-json3-dev    # jobpoll::json, the JSON codec
  libsqlite3-dev        # jobpoll::sqlite, the embedded batch store (SQLite 3.40)
  pkg-config            # finds hiredis (its Debian CMake package file is broken)
  libhiredis-dev        # jobpoll::redis, the limiter shared through Redis (hiredis 0.14)
  redis-server          # the Redis 7.0 each Redis test starts and stops itself
  libpq-dev             # jobpoll::postgres, the batch store shared by several runners (libpq 15)
  postgresql-15         # the PostgreSQL each PostgreSQL test initdb's, starts and stops itself
  libcli11-dev          # the jobpoll command-line tool's flag parser
  python3               # the loopback job server of the integration tests and the demo
  openssl               # certificates for the TLS integration tests
  ca-certificates       # the system CA bundle libcurl verifies against by default (the TLS tests expect it)
  python3-hypercorn     # tests/server/h2_server.py: the HTTP/2 (TLS, ALPN h2) server of http2_test and job_load
  python3-h2            # the HTTP/2 protocol under hypercorn (a dependency of it; named since h2_server.py relies on it)
  python3-aiohttp       # bench/python/aiohttp_client.py: the Python peer of the job_load benchmark
  python3-tenacity      # its retries on 429/5xx/connection errors
)

jobpoll_missing_packages() {
  local pkg
  for pkg in "${JOBPOLL_APT_PACKAGES[@]}"; do
    if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" != "installed" ]]; then
      printf '%s\n' "$pkg"
    fi
  done
}

jobpoll_install_deps() {
  local missing
  mapfile -t missing < <(jobpoll_missing_packages)
  if ((${#missing[@]} == 0)); then
    echo "deps: all ${#JOBPOLL_APT_PACKAGES[@]} packages present"
    return 0
  fi
  echo "deps: installing ${missing[*]}"
  local -a as_root=()
  if ((EUID != 0)); then
    if command -v sudo >/dev/null 2>&1; then
      as_root=(sudo)
    else
      echo "deps: missing packages (${missing[*]}) and not root, and no sudo: install them and run again" >&2
      return 1
    fi
  fi
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}
