#!/usr/bin/env bash
# Makes sure a Docker engine answers: starts dockerd in the background when none does
# (these machines have no systemd as PID 1), then waits until `docker info` succeeds.
set -euo pipefail
log=${DOCKERD_LOG:-/var/log/spark-inference-dockerd.log}

if docker info >/dev/null 2>&1; then
  echo "Docker engine answers: $(docker version --format '{{.Server.Version}}')"
  exit 0
fi
command -v dockerd >/dev/null || { echo "no dockerd: run scripts/system-packages.sh first" >&2; exit 1; }

# A dockerd killed with its session leaves a pid file behind that blocks the next start.
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
  rm -f /var/run/docker.pid
fi
echo "starting dockerd (log: $log)"
nohup dockerd >"$log" 2>&1 &

for _ in $(seq 60); do
  if docker info >/dev/null 2>&1; then
    echo "Docker engine answers: $(docker version --format '{{.Server.Version}}')"
    exit 0
  fi
  sleep 1
done
echo "dockerd did not answer within 60 s; last log lines:" >&2
tail -n 20 "$log" >&2
exit 1
