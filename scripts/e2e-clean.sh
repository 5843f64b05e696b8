#!/usr/bin/env bash
# Removes what an e2e suite that changed this host itself (before the suite moved into disposable
# hosts) may have left: apt sources on 127.0.0.1 (they make every later apt-get update fail), test
# keys and holds, stand-in packages, test users, servers. The current suite changes nothing here
# but the Docker engine it runs boxes on; its own leftovers (boxes of a killed run) it removes itself.
set -uo pipefail
for f in /etc/apt/sources.list.d/*; do
  [ -f "$f" ] || continue
  if grep -q '127\.0\.0\.1' "$f" 2>/dev/null; then
    echo "removing test apt source $f"
    rm -f "$f"
  fi
done
rm -f /etc/apt/sources.list.d/*.disabled-by-docker-gpu-setup /etc/apt/keyrings/docker.asc \
  /usr/share/keyrings/nvidia-container-toolkit-keyring.*
rm -f /etc/docker/daemon.json.*docker-gpu-setup
rm -rf /run/lock/docker-gpu-setup /etc/docker-gpu-setup /etc/docker/certs.d/localhost:5443
pkill -f 'http.server .*dgs-e2e' 2>/dev/null || true
held=$(apt-mark showhold 2>/dev/null | grep -E '^(docker|containerd|runc|nvidia|libnvidia)' || true)
[ -n "$held" ] && apt-mark unhold $held >/dev/null
# Stand-in packages of Docker's repository (built by the e2e suite) go; Debian's engine stays or returns later.
standins=$(dpkg-query -W -f '${Package} ${Maintainer}\n' 2>/dev/null | awk '/dgs-e2e stand-in/ {print $1}')
if [ -n "$standins" ]; then
  echo "removing stand-in packages: $standins"
  pkill -x dockerd 2>/dev/null || true
  DEBIAN_FRONTEND=noninteractive apt-get remove -y -q $standins >/dev/null || dpkg -r $standins || true
fi
if id -u dgs-runner >/dev/null 2>&1; then
  pkill -u dgs-runner 2>/dev/null || true
  userdel -r dgs-runner 2>/dev/null || true
fi
rm -f /etc/sudoers.d/dgs-runner
rm -rf /tmp/dgs-e2e-* /tmp/dgs-img-*
exit 0
