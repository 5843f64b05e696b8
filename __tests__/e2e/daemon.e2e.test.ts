/**
 * daemon.json and the NVIDIA runtime on disposable hosts with systemd. There is no GPU here: the
 * toolkit comes from a signed repository of STAND-IN packages (fixtures/build-nvidia-repo.sh)
 * served in the box, whose nvidia-container-runtime only execs runc: Docker's wiring of the
 * runtime is real, the GPU is not. The local registry is off (registry.e2e.test.ts covers it).
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {Box, IN_BOX, RUNNER_USER} from './bed/box.js'
import {BOOT_TIMEOUT} from './bed/prepare.js'
import type {Suite} from './bed/recipes.js'
import {errorLine, expectSuccess, ran, waitFor} from './harness.js'

const PORT = 58124
const DAEMON_JSON = '/etc/docker/daemon.json'
const LOCK = '/run/docker-gpu-setup'
const STALE_LIST = '/etc/apt/sources.list.d/nvidia-docker.list'

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
const plain = {'docker-source': 'distro', 'start-registry': 'false', 'gpu-runtime': 'none'}

function dockerInfo(box: Box): {runtimes: string[]; defaultRuntime: string} {
  const [runtimes, defaultRuntime] = box
    .sh("docker info --format '{{json .Runtimes}}\t{{.DefaultRuntime}}'")
    .trim()
    .split('\t')
  return {runtimes: Object.keys(JSON.parse(runtimes) as object).sort(), defaultRuntime}
}

function writeConfig(box: Box, config: object): void {
  box.write(DAEMON_JSON, `${JSON.stringify(config, null, 2)}\n`)
  box.sh('systemctl restart docker.service')
}

/** A booted bookworm host with Docker running (systemd), the test images and the stand-in repository. */
function engineBox(
  suite: Suite = 'bookworm',
  extra: Partial<Parameters<typeof Box.start>[0]> = {}
): Box {
  const box = Box.start({suite, state: 'engine', images: true, ...extra})
  if (extra.network !== 'none') box.serve('nvidia', PORT, '/gpgkey')
  return box
}

describe.each([
  ['root', undefined],
  ['a non-root runner with passwordless sudo', RUNNER_USER]
])('the NVIDIA runtime, as %s', (_who, user) => {
  let box: Box
  beforeAll(() => {
    box = engineBox()
    writeConfig(box, USER_CONFIG)
  }, BOOT_TIMEOUT)
  afterAll(() => box?.remove())

  it("keeps every key of the user's daemon.json and adds the nvidia runtime as default", () => {
    box.write(STALE_LIST, `deb https://nvidia.github.io/nvidia-docker/ubuntu22.04/$(ARCH) /\n`)
    const run = box.run(inputs, {user})
    expectSuccess(run)
    const config = JSON.parse(box.read(DAEMON_JSON) ?? '') as Record<string, unknown>
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
    expect(box.sh(`dpkg-query -W -f '\${Version}' nvidia-container-toolkit`)).toBe('1.17.8-1')
    expect(box.exists(STALE_LIST)).toBe(false)
    // Applied by reload: the same dockerd. (A reload on Docker 20.10 also drops containerd's own
    // io.containerd.* names from the list until the next start; containers use runc by name.)
    expect(run.outputs['daemon-change']).toBe('reload')
    expect(dockerInfo(box).runtimes.filter(r => !r.startsWith('io.containerd.'))).toEqual([
      'custom',
      'nvidia',
      'runc'
    ])
    expect(dockerInfo(box).defaultRuntime).toBe('nvidia')
    expect(box.sh('docker run --rm --runtime=nvidia dgs-e2e/busybox:latest').trim()).toBe('busybox')
    expect(run.outputs['daemon-config-changed']).toBe('true')
    expect(run.outputs['nvidia-runtime']).toBe('true')
    expect(run.outputs['gpu-count']).toBe('')
    expect(run.summary).toContain('+ runtimes.nvidia')
  }, 300_000)

  it('a rerun leaves the file byte-identical and restarts nothing', () => {
    const before = box.read(DAEMON_JSON)
    const pid = box.dockerdPid()
    const run = box.run(inputs, {user})
    expectSuccess(run)
    expect(box.read(DAEMON_JSON)).toBe(before)
    expect(box.dockerdPid()).toBe(pid)
    expect(ran(run, 'apt-get')).toBe(false)
    expect(run.outputs['daemon-config-changed']).toBe('false')
    expect(run.outputs['nvidia-runtime']).toBe('true')
  })
})

describe('a daemon.json the action must not break (systemd)', () => {
  let box: Box
  beforeAll(() => {
    box = engineBox()
    writeConfig(box, USER_CONFIG)
  }, BOOT_TIMEOUT)
  afterAll(() => box?.remove())

  it('a malformed file is refused with its line, left byte-identical, and the daemon keeps serving', () => {
    const broken = '{\n  "log-driver": "json-file",\n  "log-opts": {"max-size": "10m",}\n}\n'
    box.write(DAEMON_JSON, broken)
    const pid = box.dockerdPid()
    const run = box.run({...plain, 'daemon-config': '{"debug": true}'})
    const after = box.read(DAEMON_JSON)
    box.write(DAEMON_JSON, `${JSON.stringify(USER_CONFIG, null, 2)}\n`)
    expect(run.code).toBe(1)
    expect(errorLine(run)).toBe(
      `${DAEMON_JSON} is not valid JSON: unexpected "}" at column 34 (line 3). It was left as it is: fix it (or move it away) and run again.`
    )
    expect(after).toBe(broken)
    expect(box.dockerdPid()).toBe(pid)
    expect(box.sh("docker info --format '{{.ServerVersion}}'").trim()).not.toBe('')
  })

  it('a valid config that stops dockerd is rolled back under systemd: original file, daemon serving, cause named', () => {
    const before = box.read(DAEMON_JSON)
    const run = box.run({...plain, 'daemon-config': '{"no-such-option": true}'})
    expect(run.code).toBe(1)
    const message = errorLine(run)
    expect(message).toContain(
      `Docker did not start with the new ${DAEMON_JSON}; the previous file is back and Docker is running again.`
    )
    expect(message).toContain('The change that failed: + no-such-option: true.')
    expect(message).toContain(
      "the following directives don't match any configuration option: no-such-option"
    )
    expect(box.read(DAEMON_JSON)).toBe(before)
    expect(dockerInfo(box).defaultRuntime).toBe('runc')
    expect(box.sh('systemctl is-active docker.service').trim()).toBe('active')
    expect(run.outputs['daemon-config-changed']).toBe('false')
  }, 180_000)

  it('a second run waits for the host lock held by another run, then finds nothing to do', async () => {
    // The "first run" is a process the test controls, so the wait is certain, not a race.
    const holder = box.sh('setsid sleep 600 >/dev/null 2>&1 < /dev/null & echo $!').trim()
    box.sh(`mkdir -p ${LOCK} && echo ${holder} > ${LOCK}/owner`)
    const pid = box.dockerdPid()
    const second = box.start(plain)
    try {
      await waitFor(
        () => second.output().includes(`Waiting for the host lock ${LOCK}, held by pid ${holder}`),
        30_000,
        'the wait message'
      )
      await new Promise(r => setTimeout(r, 1500))
      expect(second.running()).toBe(true)
      expect(second.output()).not.toContain('::group::Docker engine')
    } finally {
      box.sh(`rm -f ${LOCK}/owner; kill ${holder}`)
    }
    const run = await second.done
    expectSuccess(run)
    expect(run.summary).toContain('host already right: nothing changed')
    expect(box.dockerdPid()).toBe(pid)
    expect(box.exists(`${LOCK}/owner`)).toBe(false)
  }, 120_000)

  it('a lock left by a run that died is taken over', () => {
    // The pid of a shell that has exited and been reaped: no such process any more.
    const dead = box.sh("sh -c 'echo $$'").trim()
    box.sh(`mkdir -p ${LOCK} && echo ${dead} > ${LOCK}/owner`)
    const run = box.run(plain)
    expectSuccess(run)
    expect(run.stdout).toContain(
      `Taking over the host lock ${LOCK}: its owner (pid ${dead}) is gone.`
    )
    expect(box.exists(`${LOCK}/owner`)).toBe(false)
  })
})

describe('the retired nvidia-docker2 package (stand-in)', () => {
  let box: Box
  beforeAll(() => {
    box = engineBox()
  }, BOOT_TIMEOUT)
  afterAll(() => box?.remove())

  it('is removed, not purged, and the daemon.json it owned survives with the user keys', () => {
    box.sh(
      `dpkg -i --force-confold ${IN_BOX.fixtures}/nvidia/legacy/nvidia-docker2_*.deb >/dev/null`
    )
    writeConfig(box, USER_CONFIG)
    expect(box.sh("dpkg-query -W -f '${Conffiles}' nvidia-docker2")).toContain(DAEMON_JSON)
    const run = box.run(inputs)
    expectSuccess(run)
    expect(run.stdout).toContain(
      '  - replace nvidia-docker2 (removed, not purged; daemon.json kept)'
    )
    expect(box.sh("dpkg-query -W -f '${db:Status-Abbrev}' nvidia-docker2")).toMatch(/^rc/)
    const config = JSON.parse(box.read(DAEMON_JSON) ?? '') as Record<string, unknown>
    expect(config['log-opts']).toEqual(USER_CONFIG['log-opts'])
    expect(config['default-runtime']).toBe('nvidia')
    expect(dockerInfo(box).runtimes).toContain('nvidia')
  }, 300_000)
})

describe('the toolkit from offline-debs on an air-gapped host', () => {
  let box: Box
  beforeAll(() => {
    box = engineBox('bookworm', {network: 'none'})
  }, BOOT_TIMEOUT)
  afterAll(() => box?.remove())

  it('installs the toolkit from the folder, with no repository added and no network', () => {
    const run = box.run({
      'docker-source': 'offline',
      'start-registry': 'false',
      'offline-debs': `${IN_BOX.fixtures}/nvidia/offline`,
      'gpu-runtime': 'nvidia',
      'nvidia-default-runtime': 'false'
    })
    expectSuccess(run)
    expect(box.sh(`dpkg-query -W -f '\${Version}' nvidia-container-toolkit`)).toBe('1.17.8-1')
    expect(box.exists('/etc/apt/sources.list.d/nvidia-container-toolkit.list')).toBe(false)
    expect(run.commands.some(c => c.includes('update'))).toBe(false)
    expect(dockerInfo(box).runtimes).toContain('nvidia')
    expect(dockerInfo(box).defaultRuntime).toBe('runc')
  }, 300_000)
})

describe.each([
  ['trixie', 'Docker 26.1, systemd'],
  ['forky', 'Docker 28.5, no init']
] as const)('dockerd --validate on %s (%s)', (suite, _engine) => {
  let box: Box
  beforeAll(() => {
    box = Box.start({suite, state: 'engine'})
    // The no-init box has no daemon until something starts it: the action, as on such a host.
    if (box.init === 'none') expectSuccess(box.run(plain))
    box.loadImages()
  }, BOOT_TIMEOUT)
  afterAll(() => box?.remove())

  it('a config the daemon rejects is refused before any write or restart', () => {
    const pid = box.dockerdPid()
    expect(pid).toBeDefined()
    const before = box.read(DAEMON_JSON)
    const run = box.run({...plain, 'daemon-config': '{"no-such-option": true}'})
    expect(run.code).toBe(1)
    expect(ran(run, 'dockerd')).toBe(true)
    expect(run.commands.some(c => c.includes('--validate'))).toBe(true)
    expect(errorLine(run)).toContain('no-such-option')
    expect(box.read(DAEMON_JSON)).toBe(before)
    expect(box.dockerdPid()).toBe(pid)
    expect(run.commands.some(c => c.includes('restart') || c.includes('kill'))).toBe(false)
  }, 120_000)

  it('a valid change is validated, applied, and the runtime works', () => {
    const run = box.run({
      ...plain,
      'daemon-config': JSON.stringify({runtimes: {standin: {path: 'runc'}}})
    })
    expectSuccess(run)
    expect(run.commands.some(c => c.includes('--validate'))).toBe(true)
    expect(dockerInfo(box).runtimes).toContain('standin')
    expect(box.sh('docker run --rm --runtime=standin dgs-e2e/busybox:latest').trim()).toBe(
      'busybox'
    )
  }, 120_000)
})
