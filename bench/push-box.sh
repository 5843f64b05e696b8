#!/usr/bin/env bash
# The push benchmark's body, run inside a disposable bookworm host by bench/push.sh (not by hand):
# builds the images, then times each way of pushing them to a fresh registry, ROUNDS rounds in
# alternating order, and prints the medians. Every way reads the same images from the same daemon
# and writes to the same kind of registry (registry:3 from the bed, its data on the box's disk).
set -euo pipefail
rounds=${ROUNDS:-3}
sets=${SETS:-small large}
action_port=5000
other_port=5100
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN {printf "%.3f", b - a}'; }

for i in $(seq 1 240); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
docker load -q -i /dgs/fixtures/images.tar >/dev/null
if ! command -v skopeo >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends skopeo >/dev/null 2>&1
fi

# count, MB per image, name prefix: FROM scratch and one layer of random bytes, distinct per image.
declare -A COUNT=([small]=8 [large]=2) SIZE=([small]=20 [large]=510)
build() {
  local n=$1 mb=$2 prefix=$3 d
  d=$(mktemp -d)
  for i in $(seq 1 "$n"); do
    mkdir -p "$d/$i"
    dd if=/dev/urandom of="$d/$i/blob" bs=1M count="$mb" status=none
    printf 'FROM scratch\nCOPY blob /blob\n' >"$d/$i/Dockerfile"
    DOCKER_BUILDKIT=0 docker build -q -t "bench/$prefix$i:1" "$d/$i" >/dev/null
  done
  rm -rf "$d"
}
for s in $sets; do build "${COUNT[$s]}" "${SIZE[$s]}" "$s"; done

fresh_registry() {
  docker rm -f -v bench-registry >/dev/null 2>&1 || true
  rm -rf /srv/bench-registry
  docker run -d --name bench-registry -p "127.0.0.1:$other_port:5000" \
    -v /srv/bench-registry:/var/lib/registry registry:3 >/dev/null
  for i in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$other_port/v2/" && return; sleep 0.1; done
  echo 'the registry did not start' >&2
  exit 1
}

names() { for i in $(seq 1 "${COUNT[$1]}"); do echo "$1$i"; done; }

way_loop() {
  for n in $(names "$1"); do
    docker tag "bench/$n:1" "localhost:$other_port/$n:1"
    docker push -q "localhost:$other_port/$n:1" >/dev/null
  done
}
way_docker2() {
  names "$1" | xargs -P2 -I{} sh -c "docker tag bench/{}:1 localhost:$other_port/{}:1 && docker push -q localhost:$other_port/{}:1 >/dev/null"
}
way_skopeo2() {
  names "$1" | xargs -P2 -I{} skopeo copy -q --dest-tls-verify=false "docker-daemon:bench/{}:1" "docker://localhost:$other_port/{}:1"
}

action() {
  local out=$1 images=$2
  : >"$out"
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    INPUT_DOCKER-SOURCE=distro INPUT_GPU-RUNTIME=none INPUT_START-REGISTRY=true \
    "INPUT_REGISTRY=localhost:$action_port" \
    INPUT_REGISTRY-DATA=/srv/bench-action "INPUT_IMAGES=$images" \
    GITHUB_OUTPUT="$out" RUNNER_TEMP=/tmp /dgs/node /dgs/action/dist/index.js >/tmp/action.log 2>&1 ||
    { tail -30 /tmp/action.log >&2; exit 1; }
}
# Timed: the whole action (detection, plan, push, digest checks), as a job step waits for it.
way_action() {
  local list start
  list=$(names "$1" | sed 's|^|bench/|; s|$|:1|')
  start=$(date +%s.%N)
  action /tmp/action.out "$list"
  since "$start" >/tmp/action.seconds
  grep -o '"status":"[a-z]*"' /tmp/action.out | sort | uniq -c | tr -s ' ' >/tmp/action.statuses
  if [ "${RERUN:-0}" = 1 ]; then
    start=$(date +%s.%N)
    action /tmp/action.rerun "$list"
    since "$start" >/tmp/action.rerun-seconds
    grep -o '"status":"[a-z]*"' /tmp/action.rerun | sort | uniq -c | tr -s ' ' >>/tmp/action.statuses
  fi
}

prepare() {
  if [ "$1" = action ]; then
    docker rm -f -v docker-gpu-setup-registry >/dev/null 2>&1 || true
    rm -rf /srv/bench-action
    action /tmp/action.out '' # starts a fresh registry; not timed
  else
    fresh_registry
  fi
}

declare -A TIMES
WAYS=(loop docker2 skopeo2 action)
for s in $sets; do
  for r in $(seq 1 "$rounds"); do
    order=("${WAYS[@]}")
    if [ $((r % 2)) = 0 ]; then order=(action skopeo2 docker2 loop); fi
    for w in "${order[@]}"; do
      prepare "$w"
      sync
      if [ "$w" = action ]; then
        RERUN=$([ "$r" = "$rounds" ] && echo 1 || echo 0) way_action "$s"
        t=$(cat /tmp/action.seconds)
      else
        began=$(date +%s.%N)
        "way_$w" "$s"
        t=$(since "$began")
      fi
      TIMES[$s.$w]="${TIMES[$s.$w]:-} $t"
      echo "  $s round $r: $w $t s" >&2
    done
  done
  TIMES[$s.rerun]=$(cat /tmp/action.rerun-seconds)
  TIMES[$s.statuses]=$(tr '\n' ' ' </tmp/action.statuses)
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
label() {
  case $1 in
  loop) echo 'docker tag + docker push, one at a time' ;;
  docker2) echo 'docker push, two at a time' ;;
  skopeo2) echo 'skopeo copy docker-daemon:, two at a time' ;;
  action) echo 'the action (push-concurrency 2)' ;;
  esac
}
echo "$(nproc) cores; Docker $(docker version --format '{{.Server.Version}}'); $(skopeo --version); median of $rounds rounds, order alternating"
for s in $sets; do
  loop=$(median "${TIMES[$s.loop]}")
  skopeo=$(median "${TIMES[$s.skopeo2]}")
  echo
  printf '%-44s %9s %9s %9s\n' "${COUNT[$s]} images x ${SIZE[$s]} MB, first push" seconds 'vs loop' 'vs skopeo'
  for w in "${WAYS[@]}"; do
    m=$(median "${TIMES[$s.$w]}")
    printf '%-44s %9.2f %8.2fx %8.2fx\n' "$(label "$w")" "$m" \
      "$(awk -v a="$loop" -v b="$m" 'BEGIN {print a / b}')" "$(awk -v a="$skopeo" -v b="$m" 'BEGIN {print a / b}')"
  done
  printf '%-44s %9.2f\n' 'the action again, nothing new (rerun)' "${TIMES[$s.rerun]}"
  echo "rounds (s): $(for w in "${WAYS[@]}"; do printf '%s:%s ' "$w" "$(tr ' ' ',' <<<"${TIMES[$s.$w]# }")"; done)"
  echo "the action's images (first push, then rerun): ${TIMES[$s.statuses]}"
done
