/**
 * daemon.json and the NVIDIA runtime on this real host. There is no GPU here: the toolkit comes
 * from a local signed repository of STAND-IN packages (fixtures/build-nvidia-repo.sh) whose
 * nvidia-container-runtime only execs runc, so Docker's wiring of the runtime is real, the GPU is not.
 * The local registry is off (start-registry: false): registry.e2e.test.ts covers it.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {
  ROOT,
  RUNNER_USER,
  buildBusyboxImage,
  dockerdPid,
  ensureRunnerUser,
  errorLine,
  ran,
  requireE2EHost,
  runAction,
  sh,
  startAction,
  stopDocker,
  waitFor,
  ensureEngineRunning,
  serveDirectory
} from './harness.js'

const PORT = 58124
const DAEMON_JSON = '/etc/docker/daemon.json'
const LOCK = '/run/lock/docker-gpu-setup'
const TOOLKIT =
  'nvidia-container-toolkit nvidia-container-toolkit-base libnvidia-container-tools libnvidia-container1'
const STALE_LIST = '/etc/apt/sources.list.d/nvidia-docker.list'
const work = mkdtempSync(path.join(os.tmpdir(), 'dgs-e2e-daemon-'))
let server: ChildProcess | undefined

/** The user's own daemon.json: log options, a features map, another runtime, mirrors, a default. */
const USER_CONFIG = {
  'log-driver': 'json-file',
  'log-opts': {'max-size': '10m', 'max-file': '3'},
  features: {buildkit: true},
  runtimes: {custom: {path: 'runc'}},
  'registry-mirrors': ['https://mirror.example.com'],
  'default-runtime': 'runc'
}

const inputs = {
  'docker-source': 'distro',
  'start-registry': 'false',
  'gpu-runtime': 'nvidia',
  'nvidia-apt-url': `http://127.0.0.1:${PORT}/stable/deb`,
  'nvidia-apt-key': `http://127.0.0.1:${PORT}/gpgkey`,
  'nvidia-toolkit-version': '1.17.8-1'
}

function dockerInfo(): {runtimes: string[]; defaultRuntime: string} {
  const [runtimes, defaultRuntime] = sh(
    "docker info --format '{{json .Runtimes}}\t{{.DefaultRuntime}}'"
  )
    .trim()
    .split('\t')
  return {runtimes: Object.keys(JSON.parse(runtimes) as object).sort(), defaultRuntime}
}

/** A host with Docker running, no toolkit, and the user's daemon.json (or none). */
function reset(config: object | undefined): void {
  sh(`apt-mark unhold ${TOOLKIT} >/dev/null 2>&1 || true`)
  // Only installed names: apt-get refuses the whole command over a name it does not know.
  sh(
    `pkgs=$({ dpkg-query -W -f '\${Package} \${db:Status-Abbrev}\\n' ${TOOLKIT} nvidia-docker2 2>/dev/null || true; } | awk '$2 ~ /^[ih]i/ {print $1}'); ` +
      '[ -z "$pkgs" ] || DEBIAN_FRONTEND=noninteractive apt-get remove -y -q $pkgs >/dev/null'
  )
  sh(
    `rm -f /etc/apt/sources.list.d/nvidia-container-toolkit.list /usr/share/keyrings/nvidia-container-toolkit-keyring.* ${STALE_LIST}*`
  )
  stopDocker()
  if (config === undefined) rmSync(DAEMON_JSON, {force: true})
  else writeFileSync(DAEMON_JSON, `${JSON.stringify(config, null, 2)}\n`)
  ensureEngineRunning()
}

beforeAll(() => {
  requireE2EHost()
  ensureRunnerUser()
  sh('mkdir -p /etc/docker')
  sh(`bash ${ROOT}/__tests__/e2e/fixtures/build-nvidia-repo.sh ${work}/nvidia >/dev/null 2>&1`)
  server = serveDirectory(`${work}/nvidia`, PORT, '/gpgkey')
  reset(undefined)
  buildBusyboxImage('dgs-e2e/busybox:daemon')
}, 300_000)

afterAll(() => {
  server?.kill()
  sh(`rm -rf ${LOCK}`, {allowFail: true})
  reset(undefined)
  stopDocker()
  rmSync(work, {recursive: true, force: true})
}, 300_000)

describe.each([
  ['root', undefined],
  ['a non-root runner with passwordless sudo', RUNNER_USER]
])('the NVIDIA runtime, as %s', (_who, user) => {
  it("keeps every key of the user's daemon.json and adds the nvidia runtime as default", () => {
    reset(USER_CONFIG)
    writeFileSync(STALE_LIST, `deb https://nvidia.github.io/nvidia-docker/ubuntu22.04/$(ARCH) /\n`)
    const run = runAction(inputs, {user})
    expect(run.code).toBe(0)
    const config = JSON.parse(readFileSync(DAEMON_JSON, 'utf8')) as Record<string, unknown>
    expect(config).toEqual({
      ...USER_CONFIG,
      runtimes: {custom: {path: 'runc'}, nvidia: {path: 'nvidia-container-runtime', args: []}},
      'default-runtime': 'nvidia'
    })
    // The key it overwrote is named, old → new.
    expect(run.stdout).toContain(
      `::warning::${DAEMON_JSON}: gpu-runtime changes default-runtime from "runc" to "nvidia"`
    )
    expect(run.stdout).toContain('gpu-runtime is nvidia but no NVIDIA driver answers')
    expect(sh(`dpkg-query -W -f '\${Version}' nvidia-container-toolkit`)).toBe('1.17.8-1')
    expect(existsSync(STALE_LIST)).toBe(false)
    expect(dockerInfo()).toEqual({
      runtimes: [
        'custom',
        'io.containerd.runc.v2',
        'io.containerd.runtime.v1.linux',
        'nvidia',
        'runc'
      ],
      defaultRuntime: 'nvidia'
    })
    expect(sh('docker run --rm --runtime=nvidia dgs-e2e/busybox:daemon').trim()).toBe(
      'dgs-e2e/busybox:daemon'
    )
    expect(run.outputs['daemon-config-changed']).toBe('true')
    expect(run.outputs['nvidia-runtime']).toBe('true')
    expect(run.outputs['gpu-count']).toBe('')
    expect(run.summary).toContain('+ runtimes.nvidia')
  }, 300_000)

  it('a rerun leaves the file byte-identical and restarts nothing', () => {
    const before = readFileSync(DAEMON_JSON)
    const pid = dockerdPid()
    const run = runAction(inputs, {user})
    expect(run.code).toBe(0)
    expect(readFileSync(DAEMON_JSON).equals(before)).toBe(true)
    expect(dockerdPid()).toBe(pid)
    expect(ran(run, 'apt-get')).toBe(false)
    expect(run.outputs['daemon-config-changed']).toBe('false')
    expect(run.outputs['nvidia-runtime']).toBe('true')
  })
})

describe('a daemon.json the action must not break', () => {
  beforeAll(() => reset(USER_CONFIG))

  it('a malformed file is refused with its line, left byte-identical, and the daemon keeps serving', () => {
    const broken = '{\n  "log-driver": "json-file",\n  "log-opts": {"max-size": "10m",}\n}\n'
    writeFileSync(DAEMON_JSON, broken)
    const pid = dockerdPid()
    const run = runAction({
      'docker-source': 'distro',
      'start-registry': 'false',
      'gpu-runtime': 'none',
      'daemon-config': '{"debug": true}'
    })
    // Put the user's file back before asserting, so a failure here does not cascade.
    const after = readFileSync(DAEMON_JSON, 'utf8')
    writeFileSync(DAEMON_JSON, `${JSON.stringify(USER_CONFIG, null, 2)}\n`)
    expect(run.code).toBe(1)
    expect(errorLine(run)).toBe(
      `${DAEMON_JSON} is not valid JSON: unexpected "}" at column 34 (line 3). It was left as it is: fix it (or move it away) and run again.`
    )
    expect(after).toBe(broken)
    expect(dockerdPid()).toBe(pid)
    expect(sh("docker info --format '{{.ServerVersion}}'").trim()).not.toBe('')
  })

  it('a valid config that stops dockerd is rolled back: original file, daemon serving, cause named', () => {
    const before = readFileSync(DAEMON_JSON)
    const run = runAction({
      'docker-source': 'distro',
      'start-registry': 'false',
      'gpu-runtime': 'none',
      'daemon-config': '{"no-such-option": true}'
    })
    expect(run.code).toBe(1)
    const message = errorLine(run)
    expect(message).toContain(
      `Docker did not start with the new ${DAEMON_JSON}; the previous file is back and Docker is running again.`
    )
    expect(message).toContain('The change that failed: + no-such-option: true.')
    expect(message).toContain(
      "the following directives don't match any configuration option: no-such-option"
    )
    expect(readFileSync(DAEMON_JSON).equals(before)).toBe(true)
    expect(dockerInfo().defaultRuntime).toBe('runc')
    expect(run.outputs['daemon-config-changed']).toBe('false')
  }, 120_000)

  it('a second run waits for the host lock held by another run, then finds nothing to do', async () => {
    // The "first run" is a process the test controls, so the wait is certain, not a race.
    const holder = spawn('sleep', ['600'], {stdio: 'ignore'})
    sh(`mkdir -p ${LOCK} && echo ${holder.pid} > ${LOCK}/owner`)
    const pid = dockerdPid()
    const second = startAction({
      'docker-source': 'distro',
      'start-registry': 'false',
      'gpu-runtime': 'none'
    })
    try {
      await waitFor(
        () =>
          second.output().includes(`Waiting for the host lock ${LOCK}, held by pid ${holder.pid}`),
        30_000,
        'the wait message'
      )
      await new Promise(r => setTimeout(r, 1500))
      expect(second.running()).toBe(true)
      expect(second.output()).not.toContain('::group::Docker engine')
    } finally {
      sh(`rm -rf ${LOCK}`)
      holder.kill()
    }
    const run = await second.done
    expect(run.code).toBe(0)
    expect(run.summary).toContain('host already right: nothing changed')
    expect(dockerdPid()).toBe(pid)
    expect(existsSync(LOCK)).toBe(false)
  }, 120_000)

  it('a lock left by a run that died is taken over', () => {
    // The pid of a shell that has exited and been reaped: no such process any more.
    const dead = {pid: Number(sh("sh -c 'echo $$'").trim())}
    sh(`mkdir -p ${LOCK} && echo ${dead.pid} > ${LOCK}/owner`)
    const run = runAction({
      'docker-source': 'distro',
      'start-registry': 'false',
      'gpu-runtime': 'none'
    })
    expect(run.code).toBe(0)
    expect(run.stdout).toContain(
      `Taking over the host lock ${LOCK}: its owner (pid ${dead.pid}) is gone.`
    )
    expect(existsSync(LOCK)).toBe(false)
  })
})

describe('the retired nvidia-docker2 package (stand-in)', () => {
  it('is removed, not purged, and the daemon.json it owned survives with the user keys', () => {
    reset(USER_CONFIG)
    sh(`dpkg -i --force-confold ${work}/nvidia/legacy/nvidia-docker2_*.deb >/dev/null`)
    expect(sh("dpkg-query -W -f '${Conffiles}' nvidia-docker2")).toContain(DAEMON_JSON)
    const run = runAction(inputs)
    expect(run.code).toBe(0)
    expect(run.stdout).toContain(
      '  - replace nvidia-docker2 (removed, not purged; daemon.json kept)'
    )
    expect(sh("dpkg-query -W -f '${db:Status-Abbrev}' nvidia-docker2")).toMatch(/^rc/)
    const config = JSON.parse(readFileSync(DAEMON_JSON, 'utf8')) as Record<string, unknown>
    expect(config['log-opts']).toEqual(USER_CONFIG['log-opts'])
    expect(config['default-runtime']).toBe('nvidia')
    expect(dockerInfo().runtimes).toContain('nvidia')
  }, 300_000)
})

describe('offline toolkit', () => {
  it('installs the toolkit from offline-debs, with no repository added', () => {
    reset(undefined)
    const run = runAction({
      'docker-source': 'offline',
      'start-registry': 'false',
      'offline-debs': `${work}/nvidia/offline`,
      'gpu-runtime': 'nvidia',
      'nvidia-default-runtime': 'false'
    })
    expect(run.code).toBe(0)
    expect(sh(`dpkg-query -W -f '\${Version}' nvidia-container-toolkit`)).toBe('1.17.8-1')
    expect(existsSync('/etc/apt/sources.list.d/nvidia-container-toolkit.list')).toBe(false)
    expect(run.commands.some(c => c.includes('update'))).toBe(false)
    expect(dockerInfo().runtimes).toContain('nvidia')
    expect(dockerInfo().defaultRuntime).toBe('runc')
  }, 300_000)
})
