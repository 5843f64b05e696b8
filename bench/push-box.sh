#!/usr/bin/env bash
# The push benchmark's body, run by bench/push.sh (not by hand) inside a disposable bookworm host or
# on this machine's own engine: builds the images, then times each way of pushing them to a fresh
# registry, ROUNDS rounds in alternating order, and prints the medians beside the floor: the
# daemon's own export of the same images (`docker save` two at a time to /dev/null). Every way reads
# the same images from the same daemon and writes to the same kind of registry (registry:3 from the
# bed, its data on the same disk); the bytes each registry holds afterwards are printed too.
# Paths (set by push.sh): FIXTURES (the bed's fixtures), NODE24, DIST (the bundle's folder),
# ROOTFS_TAR (`docker save` of two root file systems, for the rootfs set), WORK (scratch and data).
set -euo pipefail
rounds=${ROUNDS:-3}
sets=${SETS:-small large rootfs}
fixtures=${FIXTURES:-/dgs/fixtures}
node24=${NODE24:-/dgs/node}
dist=${DIST:-/dgs/action/dist}
rootfs_tar=${ROOTFS_TAR:-/dgs/rootfs.tar}
work=${WORK:-/srv}
action_port=5000
other_port=5100
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN {printf "%.3f", b - a}'; }

for i in $(seq 1 240); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
docker load -q -i "$fixtures/images.tar" >/dev/null
if ! command -v skopeo >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends skopeo >/dev/null 2>&1
fi

# count, MB per image, name prefix: FROM scratch and one layer of random bytes, distinct per image;
# rootfs: two Debian root file systems (debootstrap trees as the bed imports them), compressible.
declare -A COUNT=([small]=8 [large]=2 [rootfs]=2) SIZE=([small]=20 [large]=510 [rootfs]=0)
build() {
  local n=$1 mb=$2 prefix=$3 d
  if [ "$prefix" = rootfs ]; then
    local i=1
    for ref in $(docker load -i "$rootfs_tar" | sed -n 's/^Loaded image: //p'); do
      docker tag "$ref" "bench/rootfs$i:1"
      i=$((i + 1))
    done
    SIZE[rootfs]=$(docker image inspect bench/rootfs1:1 --format '{{.Size}}' | awk '{printf "%d", $1 / 1e6}')
    return
  fi
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
  rm -rf "$work/bench-registry"
  docker run -d --name bench-registry -p "127.0.0.1:$other_port:5000" \
    -v "$work/bench-registry:/var/lib/registry" registry:3 >/dev/null
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
way_skopeo2l1() {
  names "$1" | xargs -P2 -I{} skopeo copy -q --dest-tls-verify=false --dest-compress-level 1 "docker-daemon:bench/{}:1" "docker://localhost:$other_port/{}:1"
}
# The floor: every byte must leave the daemon once, and this is the daemon handing them out.
way_floor() {
  names "$1" | xargs -P2 -I{} sh -c 'docker save bench/{}:1 >/dev/null'
}

action() {
  local out=$1 images=$2
  : >"$out"
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    INPUT_DOCKER-SOURCE=distro INPUT_INSTALL-DOCKER=false INPUT_GPU-RUNTIME=none \
    INPUT_START-REGISTRY=true "INPUT_REGISTRY=localhost:$action_port" \
    "INPUT_REGISTRY-DATA=$work/bench-action" "INPUT_IMAGES=$images" \
    "INPUT_PUSH-COMPRESSION=${COMPRESSION:-auto}" \
    GITHUB_OUTPUT="$out" RUNNER_TEMP=/tmp "$node24" "$dist/index.js" >/tmp/action.log 2>&1 ||
    { tail -30 /tmp/action.log >&2; exit 1; }
}
# Timed: the whole action (detection, plan, push, digest checks), as a job step waits for it.
way_action() {
  local list start
  list=$(names "$1" | sed 's|^|bench/|; s|$|:1|')
  start=$(date +%s.%N)
  action /tmp/action.out "$list"
  since "$start" >/tmp/action.seconds
  grep -o 'Layers to .*' /tmp/action.log | head -1 >"/tmp/action-${COMPRESSION:-auto}.choice" || true
  grep -o '"status":"[a-z]*"' /tmp/action.out | sort | uniq -c | tr -s ' ' >/tmp/action.statuses
  if [ "${RERUN:-0}" = 1 ]; then
    start=$(date +%s.%N)
    action /tmp/action.rerun "$list"
    since "$start" >/tmp/action.rerun-seconds
    grep -o '"status":"[a-z]*"' /tmp/action.rerun | sort | uniq -c | tr -s ' ' >>/tmp/action.statuses
  fi
}

prepare() {
  case $1 in
  action | action_gzip)
    docker rm -f -v docker-gpu-setup-registry >/dev/null 2>&1 || true
    rm -rf "$work/bench-action"
    action /tmp/action.out '' # starts a fresh registry; not timed
    ;;
  floor) ;;
  *) fresh_registry ;;
  esac
}

# What the registry of a way holds once it has pushed: the bytes it was sent, at least.
stored() {
  case $1 in
  action | action_gzip) du -sb "$work/bench-action" | cut -f1 ;;
  floor) echo 0 ;;
  *) du -sb "$work/bench-registry" | cut -f1 ;;
  esac
}

declare -A TIMES BYTES LOAD
# The action twice: push-compression auto (its registry is on loopback: uncompressed layers) and
# gzip (what any registry elsewhere gets, here timed against the same local disk as skopeo).
read -r -a WAYS <<<"${WAYS:-floor loop docker2 skopeo2 skopeo2l1 action_gzip action}"
for s in $sets; do
  LOAD[$s.before]=$(cut -d' ' -f1-3 /proc/loadavg)
  for r in $(seq 1 "$rounds"); do
    order=("${WAYS[@]}")
    if [ $((r % 2)) = 0 ]; then
      order=()
      for ((i = ${#WAYS[@]} - 1; i >= 0; i--)); do order+=("${WAYS[$i]}"); done
    fi
    for w in "${order[@]}"; do
      prepare "$w"
      sync
      if [ "$w" = action ]; then
        RERUN=$([ "$r" = "$rounds" ] && echo 1 || echo 0) way_action "$s"
        t=$(cat /tmp/action.seconds)
      elif [ "$w" = action_gzip ]; then
        # Not the last: the statuses read after the rounds are those of push-compression auto.
        cp /tmp/action.statuses /tmp/action.statuses.auto 2>/dev/null || true
        COMPRESSION=gzip way_action "$s"
        t=$(cat /tmp/action.seconds)
        cp /tmp/action.statuses.auto /tmp/action.statuses 2>/dev/null || true
      else
        began=$(date +%s.%N)
        "way_$w" "$s"
        t=$(since "$began")
      fi
      TIMES[$s.$w]="${TIMES[$s.$w]:-} $t"
      BYTES[$s.$w]=$(stored "$w")
      echo "  $s round $r: $w $t s" >&2
    done
  done
  LOAD[$s.after]=$(cut -d' ' -f1-3 /proc/loadavg)
  TIMES[$s.rerun]=$(cat /tmp/action.rerun-seconds)
  TIMES[$s.statuses]=$(tr '\n' ' ' </tmp/action.statuses)
  TIMES[$s.choice]="auto: $(cat /tmp/action-auto.choice); gzip: $(cat /tmp/action-gzip.choice)"
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
label() {
  case $1 in
  floor) echo "the daemon's export (docker save, two at a time)" ;;
  loop) echo 'docker tag + docker push, one at a time' ;;
  docker2) echo 'docker push, two at a time' ;;
  skopeo2) echo 'skopeo copy docker-daemon:, two at a time' ;;
  skopeo2l1) echo 'skopeo, two at a time, gzip level 1' ;;
  action) echo 'the action (auto: uncompressed, loopback)' ;;
  action_gzip) echo 'the action, push-compression gzip' ;;
  esac
}
spread() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk 'NR == 1 {a = $1} {b = $1} END {printf "%.2f-%.2f", a, b}'; }
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
echo "${WHERE:-a bookworm box}: $(nproc) cores ($cpu), $mem; Docker $(docker version --format '{{.Server.Version}}'); $(skopeo --version); median of $rounds rounds, order alternating"
echo "load while it ran (uptime, before and after each set):"
for s in $sets; do echo "  $s: ${LOAD[$s.before]} / ${LOAD[$s.after]}"; done
for s in $sets; do
  floor=$(median "${TIMES[$s.floor]}")
  skopeo=$(median "${TIMES[$s.skopeo2]}")
  echo
  printf '%-48s %8s %12s %9s %10s %10s\n' "${COUNT[$s]} images x ${SIZE[$s]} MB, first push" seconds spread 'x floor' 'vs skopeo' 'MB stored'
  for w in "${WAYS[@]}"; do
    m=$(median "${TIMES[$s.$w]}")
    printf '%-48s %8.2f %12s %8.2fx %9.2fx %10.1f\n' "$(label "$w")" "$m" "$(spread "${TIMES[$s.$w]}")" \
      "$(awk -v a="$floor" -v b="$m" 'BEGIN {print b / a}')" "$(awk -v a="$skopeo" -v b="$m" 'BEGIN {print a / b}')" \
      "$(awk -v b="${BYTES[$s.$w]}" 'BEGIN {print b / 1e6}')"
  done
  printf '%-44s %9.2f\n' 'the action again, nothing new (rerun)' "${TIMES[$s.rerun]}"
  echo "rounds (s): $(for w in "${WAYS[@]}"; do printf '%s:%s ' "$w" "$(tr ' ' ',' <<<"${TIMES[$s.$w]# }")"; done)"
  echo "the action's images (first push, then rerun): ${TIMES[$s.statuses]}"
  echo "the action's layers, as its log says: ${TIMES[$s.choice]}"
done
