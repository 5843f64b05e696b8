/**
 * The core path on each engine the bed boots: a bare host → install Debian's engine → the NVIDIA
 * runtime (STAND-IN toolkit: its runtime execs runc) → local registry → push → a rerun that
 * changes nothing → a reboot, after which Docker is back and the registry serves what was pushed.
 *   bookworm: Docker 20.10, systemd 252, as a sudo user
 *   trixie:   Docker 26.1, systemd 257, as root (docker.io there only recommends the client)
 *   forky:    Docker 28.5 with containerd 2.1, no init (the action starts dockerd), as a sudo user
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {Box, IN_BOX, RUNNER_USER} from './bed/box.js'
import {BOOT_TIMEOUT} from './bed/prepare.js'
import {HOSTS, type Suite} from './bed/recipes.js'
import {expectSuccess, ran, type ActionRun} from './harness.js'

const PORT = 58125
const setup = {
  'docker-source': 'distro',
  'gpu-runtime': 'nvidia',
  'nvidia-apt-url': `http://127.0.0.1:${PORT}/stable/deb`,
  'nvidia-apt-key': `http://127.0.0.1:${PORT}/gpgkey`,
  'start-registry': 'true',
  'registry-data': '/srv/registry',
  // A bare host has no registry image and nothing can be pulled here: the air-gapped way.
  'registry-image-archive': `${IN_BOX.fixtures}/registry.tar`
}
const withImages = {...setup, images: 'dgs-e2e/app1:1\ndgs-e2e/app2:1 => team/app2:v1'}

function statuses(run: ActionRun): string[] {
  return (JSON.parse(run.outputs.images) as {status: string}[]).map(r => r.status)
}

describe.each([
  ['bookworm', RUNNER_USER],
  ['trixie', undefined],
  ['forky', RUNNER_USER]
] as [Suite, string | undefined][])('the core path on %s (as %s)', (suite, user) => {
  const recipe = HOSTS[suite]
  let box: Box
  let dockerd: number | undefined
  beforeAll(() => {
    box = Box.start({suite, state: 'base'})
    box.serve('nvidia', PORT, '/gpgkey')
  }, BOOT_TIMEOUT)
  afterAll(() => box?.remove())

  it('installs the engine, the NVIDIA runtime and the registry on a bare host', () => {
    const run = box.run(setup, {user})
    expectSuccess(run)
    expect(run.outputs['docker-version']).toMatch(recipe.expect.docker)
    expect(run.outputs['docker-changed']).toBe('true')
    expect(run.outputs['nvidia-runtime']).toBe('true')
    expect(run.outputs['registry-started']).toBe('true')
    expect(box.sh('docker info --format {{.DefaultRuntime}}').trim()).toBe('nvidia')
    // systemd runs and enables the service; with no init the action runs dockerd and marks it.
    const service =
      recipe.init === 'systemd'
        ? box.sh('systemctl is-active docker.service; systemctl is-enabled docker.service')
        : box.read('/run/docker-gpu-setup/dockerd.pid')
    expect(service).toBe(recipe.init === 'systemd' ? 'active\nenabled\n' : `${box.dockerdPid()}\n`)
    box.loadImages()
    // The default runtime is the (stand-in) nvidia one: every container goes through it.
    expect(box.sh('docker run --rm dgs-e2e/busybox:latest').trim()).toBe('busybox')
  }, 600_000)

  it('pushes, and the pushed images pull and run', () => {
    const run = box.run(withImages, {user})
    expectSuccess(run)
    expect(statuses(run)).toEqual(['pushed', 'pushed'])
    box.sh('docker rmi localhost:5000/team/app2:v1 >/dev/null')
    box.sh('docker pull -q localhost:5000/team/app2:v1 >/dev/null')
    expect(box.sh('docker run --rm localhost:5000/team/app2:v1').trim()).toBe('app2')
  }, 300_000)

  it('a rerun changes nothing and restarts nothing', () => {
    dockerd = box.dockerdPid()
    const run = box.run(withImages, {user})
    expectSuccess(run)
    expect(ran(run, 'apt-get')).toBe(false)
    expect(box.dockerdPid()).toBe(dockerd)
    expect(run.outputs['docker-changed']).toBe('false')
    expect(run.outputs['daemon-config-changed']).toBe('false')
    expect(run.outputs['registry-started']).toBe('false')
    expect(statuses(run)).toEqual(['unchanged', 'unchanged'])
    expect(run.summary).toContain('host already right: nothing changed')
  }, 120_000)

  it('after a reboot Docker is back and the registry serves what was pushed', () => {
    box.reboot()
    // Enabled at boot, systemd starts it; with no init nothing does until the next job's run.
    if (recipe.init === 'systemd') box.waitDocker()
    const afterBoot = box.dockerdPid()
    if (recipe.init === 'none') expectSuccess(box.run(setup, {user}))
    expect(afterBoot === undefined).toBe(recipe.init === 'none')
    box.sh(
      'for i in $(seq 1 100); do curl -sf http://127.0.0.1:5000/v2/ >/dev/null && exit 0; sleep 0.2; done; exit 1'
    )
    expect(box.sh('curl -sf http://127.0.0.1:5000/v2/team/app2/tags/list')).toContain('"v1"')
    const run = box.run(withImages, {user})
    expectSuccess(run)
    expect(statuses(run)).toEqual(['unchanged', 'unchanged'])
    expect(run.outputs['docker-changed']).toBe('false')
  }, 300_000)
})
