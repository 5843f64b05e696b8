#!/usr/bin/env bash
# The seed procedure's engine steps as users script them today (baseline for bench/engine.sh):
# remove old packages, refresh lists, install the engine, start it if needed, add the user, check.
# Debian's docker.io stands in for Docker's repository, which cannot be reached here.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a
apt-get remove -y -q docker docker-engine >/dev/null 2>&1 || true
apt-get update -q >/dev/null 2>&1
apt-get install -y -q docker.io >/dev/null 2>&1
if ! docker info >/dev/null 2>&1; then
  # No systemd here: what a person does by hand on such a host.
  setsid /usr/sbin/dockerd >>/var/log/seed-dockerd.log 2>&1 </dev/null &
  for _ in $(seq 1 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
fi
usermod -aG docker "${SEED_USER:-root}"
docker info >/dev/null
