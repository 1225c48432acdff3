#!/usr/bin/env bash
# Install the system packages the tests and the local stack need, only when they are missing.
# With --bench, also the load generator the benchmarks use (wrk; they fall back to a Python client)
# and valgrind, which counts instructions per request for bench_instructions.
set -euo pipefail

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
if [ "${1:-}" = "--bench" ]; then
  command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
  command -v valgrind >/dev/null 2>&1 || need_apt+=(valgrind)
fi

if ((${#need_apt[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing system packages: ${need_apt[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
