/**
 * The outer host: the machine `npm test` runs on. The bed needs only a Docker daemon that answers
 * and debootstrap here; it installs what is missing when it runs as root on Debian or Ubuntu, says
 * so, and otherwise fails with the one command that fixes it. It changes nothing else here.
 */
import {spawn, spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, openSync} from 'node:fs'

/** Runs a fixed command line of the bed on the outer host (never the action's code path). */
export function sh(script: string, opts: {allowFail?: boolean; input?: string} = {}): string {
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', script], {
    encoding: 'utf8',
    input: opts.input,
    maxBuffer: 256 * 1024 * 1024
  })
  if (r.status !== 0 && !opts.allowFail) {
    throw new Error(
      `command failed (${r.status}): ${script}\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`
    )
  }
  return r.stdout
}

function say(message: string): void {
  process.stderr.write(`[e2e bed] ${message}\n`)
}

function daemonAnswers(): boolean {
  return (
    spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], {timeout: 15_000}).status === 0
  )
}

function isDebianLike(): boolean {
  return existsSync('/usr/bin/apt-get') && existsSync('/usr/bin/dpkg')
}

/** Installs Debian packages on the outer host (root only), saying so. */
function aptInstall(packages: string[], why: string): void {
  say(`installing ${packages.join(' ')} on this machine: ${why}`)
  sh(
    `export DEBIAN_FRONTEND=noninteractive; apt-get update -q >/dev/null; apt-get install -y -q --no-install-recommends ${packages.join(' ')} >/dev/null`
  )
}

/** The fix a non-root or non-Debian contributor must apply by hand. */
const HOW =
  'run the e2e suite as root on Debian or Ubuntu (it installs what it needs), or install and start Docker yourself: sudo apt-get install -y docker.io debootstrap && sudo systemctl start docker'

/** Makes sure a Docker daemon answers and debootstrap exists here; never skips. */
export function ensureOuterHost(): void {
  const root = process.getuid?.() === 0
  if (!root) throw new Error(`The e2e suite builds and starts disposable hosts as root: ${HOW}`)
  const missing: string[] = []
  if (!existsSync('/usr/sbin/debootstrap')) missing.push('debootstrap')
  if (spawnSync('sh', ['-c', 'command -v dockerd'], {}).status !== 0) missing.push('docker.io')
  if (missing.length > 0) {
    if (!isDebianLike()) throw new Error(`${missing.join(' and ')} missing: ${HOW}`)
    aptInstall(missing, 'the e2e suite boots disposable Debian hosts in Docker')
  }
  if (daemonAnswers()) return
  if (existsSync('/run/systemd/system')) {
    say('no Docker daemon answers: starting docker.service')
    sh('systemctl start docker.service')
  } else {
    // No init system here (a container, WSL): run dockerd in the background, detached.
    say('no Docker daemon answers: starting dockerd (log: /var/log/dgs-e2e-dockerd.log)')
    mkdirSync('/var/log', {recursive: true})
    const log = openSync('/var/log/dgs-e2e-dockerd.log', 'a')
    sh('rm -f /var/run/docker.pid', {allowFail: true})
    spawn('dockerd', [], {detached: true, stdio: ['ignore', log, log]}).unref()
  }
  for (let i = 0; i < 120 && !daemonAnswers(); i++) sh('sleep 0.5')
  if (!daemonAnswers()) {
    throw new Error(
      `Docker did not answer after starting it; see /var/log/dgs-e2e-dockerd.log or journalctl -u docker. ${HOW}`
    )
  }
}
