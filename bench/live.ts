/**
 * Docker API downtime for the same daemon.json change (the NVIDIA runtime added) on a live host
 * with a container running, in one run, alternating, median of ROUNDS (default 3):
 *   restart  the file written, then `systemctl restart docker` (what a restart-only tool does)
 *   reload   the action: the file written, then `systemctl reload docker`
 * Downtime: from the command that applies the change until `docker info` shows it (for the action,
 * its own measure, printed in its log). Also counts
 * the running containers each way stopped. Runs in a disposable bookworm host of the e2e bed:
 *   npm run package && sudo npm run bench:live
 */
import {Box} from '../__tests__/e2e/bed/box.js'

const rounds = Number(process.env.ROUNDS ?? 3)
const PORT = 58129
const box = Box.start({suite: 'bookworm', state: 'engine'})
try {
  box.serve('nvidia', PORT, '/gpgkey')
  box.loadImages()
  // The toolkit (stand-in) installed once, so both ways change only daemon.json.
  const toolkit = {
    'docker-source': 'distro',
    'start-registry': 'false',
    'gpu-runtime': 'nvidia',
    'gpu-check': 'false',
    'nvidia-default-runtime': 'false',
    'nvidia-apt-url': `http://127.0.0.1:${PORT}/stable/deb`,
    'nvidia-apt-key': `http://127.0.0.1:${PORT}/gpgkey`
  }
  const first = box.run(toolkit)
  if (first.code !== 0) throw new Error(first.stdout.slice(-3000))

  /** Seconds until docker info lists `runtime`, measured in the box from just before `apply`. */
  const timed = (apply: string, runtime: string): number =>
    Number(
      box
        .sh(
          `s=$(date +%s.%N); ${apply}; until docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"${runtime}"'; do sleep 0.02; done; ` +
            'e=$(date +%s.%N); awk -v a="$s" -v b="$e" "BEGIN {print b - a}"'
        )
        .trim()
    )
  const work = () => box.sh('docker ps -q --filter name=^work$ | wc -l').trim()
  const startWork = () =>
    box.sh(
      'docker rm -f work >/dev/null 2>&1; docker run -d --name work dgs-e2e/busybox:latest /bin/busybox sleep 3600 >/dev/null'
    )

  const restart: number[] = []
  const reload: number[] = []
  let stoppedByRestart = 0
  let stoppedByReload = 0
  for (let i = 0; i < rounds; i++) {
    const order = i % 2 === 0 ? ['restart', 'reload'] : ['reload', 'restart']
    for (const way of order) {
      startWork()
      const runtime = `bench-${way}-${i}`
      const config = JSON.stringify({runtimes: {[runtime]: {path: 'runc'}}})
      if (way === 'restart') {
        box.sh(
          `python3 -c 'import json,sys; f="/etc/docker/daemon.json"; c=json.load(open(f)); c["runtimes"].update(json.loads(sys.argv[1])["runtimes"]); json.dump(c, open(f, "w"))' '${config}'`
        )
        restart.push(timed('systemctl restart docker.service', runtime))
        stoppedByRestart += work() === '1' ? 0 : 1
      } else {
        const r = box.run({...toolkit, 'daemon-config': config})
        // The action's own measure: from its reload until docker info shows the change.
        const m = /applied by the same daemon in ([\d.]+) s/.exec(r.stdout)
        if (r.outputs['daemon-change'] !== 'reload' || !m) {
          throw new Error(`expected a reload: ${r.stdout.slice(-2000)}`)
        }
        reload.push(Number(m[1]))
        stoppedByReload += work() === '1' ? 0 : 1
      }
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
  const a = median(reload)
  const b = median(restart)
  console.log(
    `Docker API downtime, NVIDIA-style runtime added to daemon.json (${rounds} rounds, median)`
  )
  console.log(`${'way'.padEnd(34)}${'downtime'.padStart(10)}${'containers stopped'.padStart(20)}`)
  console.log(
    `${'restart (systemctl restart)'.padEnd(34)}${`${b.toFixed(3)} s`.padStart(10)}${String(stoppedByRestart).padStart(20)}`
  )
  console.log(
    `${'the action (reload)'.padEnd(34)}${`${a.toFixed(3)} s`.padStart(10)}${String(stoppedByReload).padStart(20)}`
  )
  console.log(`restart ÷ reload: ${(b / a).toFixed(1)}x`)
} finally {
  box.remove()
}
