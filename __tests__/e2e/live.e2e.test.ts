/**
 * Changing a live GPU host: daemon.json changes reach the running daemon by reload where dockerd
 * applies them in place, and by a restart under live-restore where only a start reads them, so a
 * container someone else runs keeps its process. On each engine the bed boots: Docker 20.10 and
 * 26.1 under systemd, 28.5 with no init (the action's own dockerd).
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {Box} from './bed/box.js'
import {BOOT_TIMEOUT} from './bed/prepare.js'
import type {Suite} from './bed/recipes.js'
import {errorLine, expectSuccess, type ActionRun} from './harness.js'

const PORT = 58128
const base = {
  'docker-source': 'distro',
  'start-registry': 'false',
  'gpu-runtime': 'nvidia',
  'gpu-check': 'false',
  'nvidia-apt-url': `http://127.0.0.1:${PORT}/stable/deb`,
  'nvidia-apt-key': `http://127.0.0.1:${PORT}/gpgkey`
}
const mirrors = {
  'registry-mirrors': ['http://10.0.0.9:5000'],
  'insecure-registries': ['10.0.0.9:5000']
}
const logOpts = {'log-opts': {'max-size': '10m', 'max-file': '2'}}

interface Info {
  Runtimes: Record<string, unknown>
  DefaultRuntime: string
  LiveRestoreEnabled: boolean
  RegistryConfig: {Mirrors: string[] | null; IndexConfigs: Record<string, {Secure: boolean}>}
}

describe.each([
  ['bookworm', 'Docker 20.10, systemd'],
  ['trixie', 'Docker 26.1, systemd'],
  ['forky', 'Docker 28.5, no init']
] as [Suite, string][])('a live host on %s (%s), a container running', (suite, _engine) => {
  let box: Box
  let dockerd: number | undefined
  let worker: string

  const info = (): Info => JSON.parse(box.sh("docker info --format '{{json .}}'")) as Info
  const pidOf = (name: string) => box.sh(`docker inspect -f '{{.State.Pid}}' ${name}`).trim()
  const run = (config: object): ActionRun =>
    box.run({...base, 'daemon-config': JSON.stringify(config)})

  beforeAll(() => {
    box = Box.start({suite, state: 'engine'})
    box.serve('nvidia', PORT, '/gpgkey')
    // No init: nothing runs dockerd until a job does; the action starts it.
    if (box.init === 'none')
      expectSuccess(
        box.run({'docker-source': 'distro', 'start-registry': 'false', 'gpu-runtime': 'none'})
      )
    box.loadImages()
    // Someone else's work, without a restart policy: a restart without live-restore would stop it.
    box.sh('docker run -d --name work dgs-e2e/busybox:latest /bin/busybox sleep 3600 >/dev/null')
    worker = pidOf('work')
    dockerd = box.dockerdPid()
  }, BOOT_TIMEOUT)
  afterAll(() => box?.remove())

  it('adding the NVIDIA runtime is a reload: same dockerd, same container process', () => {
    const r = run({})
    expectSuccess(r)
    expect(r.outputs['daemon-change']).toBe('reload')
    expect(r.stdout).toMatch(
      /Reloaded Docker: default-runtime, runtimes applied by the same daemon/
    )
    expect(box.dockerdPid()).toBe(dockerd)
    expect(pidOf('work')).toBe(worker)
    expect(Object.keys(info().Runtimes)).toContain('nvidia')
    expect(info().DefaultRuntime).toBe('nvidia')
    // New containers go through the (stand-in) nvidia runtime.
    expect(box.sh('docker run --rm dgs-e2e/busybox:latest').trim()).toBe('busybox')
  }, 300_000)

  it('a registry mirror and an insecure registry are a reload too', () => {
    const r = run(mirrors)
    expectSuccess(r)
    expect(r.outputs['daemon-change']).toBe('reload')
    expect(box.dockerdPid()).toBe(dockerd)
    expect(pidOf('work')).toBe(worker)
    expect((info().RegistryConfig.Mirrors ?? []).map(m => m.replace(/\/$/, ''))).toEqual([
      'http://10.0.0.9:5000'
    ])
    expect(info().RegistryConfig.IndexConfigs['10.0.0.9:5000']?.Secure).toBe(false)
  }, 120_000)

  it('log-opts restart dockerd under live-restore: the container keeps its process, live-restore ends as it was', () => {
    const r = run({...mirrors, ...logOpts})
    expectSuccess(r)
    expect(r.outputs['daemon-change']).toBe('restart')
    expect(r.stdout).toContain('log-opts only apply when dockerd starts')
    expect(r.stdout).toContain('live-restore keeps these running: work')
    expect(box.dockerdPid()).not.toBe(dockerd)
    expect(box.sh("docker inspect -f '{{.State.Running}}' work").trim()).toBe('true')
    expect(pidOf('work')).toBe(worker)
    box.sh('docker run -d --name fresh dgs-e2e/busybox:latest /bin/busybox sleep 60 >/dev/null')
    expect(
      JSON.parse(box.sh("docker inspect -f '{{json .HostConfig.LogConfig.Config}}' fresh"))
    ).toEqual(logOpts['log-opts'])
    box.sh('docker rm -f fresh >/dev/null')
    // live-restore as the user had it: not set in the file, off in the daemon.
    expect(JSON.parse(box.read('/etc/docker/daemon.json') ?? '{}')).not.toHaveProperty(
      'live-restore'
    )
    expect(info().LiveRestoreEnabled).toBe(false)
    expect(r.summary).toMatch(/applied by.*restart/)
    dockerd = box.dockerdPid()
  }, 300_000)

  it('a rerun changes nothing', () => {
    const r = run({...mirrors, ...logOpts})
    expectSuccess(r)
    expect(r.outputs['daemon-change']).toBe('none')
    expect(r.outputs['daemon-config-changed']).toBe('false')
    expect(box.dockerdPid()).toBe(dockerd)
    expect(pidOf('work')).toBe(worker)
  }, 120_000)

  it('where live-restore cannot be used (swarm mode) a restart is refused before any change, naming the container', () => {
    box.sh('docker swarm init --advertise-addr 127.0.0.1 >/dev/null')
    try {
      const before = box.read('/etc/docker/daemon.json')
      const r = run({...mirrors, 'log-opts': {'max-size': '20m'}})
      expect(r.code).toBe(1)
      expect(errorLine(r)).toMatch(
        /needs a restart of Docker \(log-opts only apply at start\), and live-restore cannot keep running containers alive here \(swarm mode\)\. \/etc\/docker\/daemon\.json was not changed\. Running: work\./
      )
      expect(box.read('/etc/docker/daemon.json')).toBe(before)
      expect(box.dockerdPid()).toBe(dockerd)
      expect(pidOf('work')).toBe(worker)
    } finally {
      box.sh('docker swarm leave --force >/dev/null')
    }
  }, 120_000)
})
