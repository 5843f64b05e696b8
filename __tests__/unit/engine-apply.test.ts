import {describe, expect, it} from '@jest/globals'
import type {EngineInputs} from '../../src/phases/engine/inputs.js'
import {enginePhase} from '../../src/phases/engine/phase.js'
import type {EngineFacts, EnginePlan} from '../../src/phases/engine/plan.js'
import type {PhaseContext} from '../../src/phases/pipeline.js'
import {parseOsRelease} from '../../src/system/os-release.js'
import {FakeRunner} from './fake-runner.js'
import {ME, parseWith} from './inputs-helper.js'

const MADISON =
  ' docker.io | 20.10.24+dfsg1-1+deb12u1+b6 | http://deb.debian.org/debian bookworm/main amd64 Packages\n'

function context(runner: FakeRunner, pin: string): PhaseContext<EngineInputs> {
  return {
    inputs: parseWith({'docker-source': 'distro', 'docker-version': pin}).engine,
    host: {
      os: parseOsRelease('ID=debian\nVERSION_CODENAME=bookworm\n'),
      isRoot: false,
      user: 'runner',
      systemd: false,
      tempDir: '/tmp',
      identity: ME
    },
    runner,
    outputs: {},
    warn: () => undefined,
    remember: () => undefined,
    show: () => undefined
  }
}

const plan = (pin: string): EnginePlan => ({
  found: '',
  steps: [],
  warnings: [],
  packagesChange: true,
  actions: [
    {kind: 'apt-update'},
    {kind: 'stop-own-dockerd', pid: 999999},
    {kind: 'remove', packages: ['docker-ce']},
    {kind: 'install', packages: ['docker.io'], pin, pinned: ['docker.io']},
    {kind: 'hold', packages: ['docker.io']}
  ]
})

describe('engine apply (recorded argv)', () => {
  it('checks a pin against the package lists before it stops or removes anything', async () => {
    const runner = new FakeRunner([[['apt-cache', 'madison'], {stdout: MADISON}]], false)
    await expect(enginePhase.apply(plan('99.0.1'), context(runner, '99.0.1'))).rejects.toThrow(
      'docker-version 99.0.1 is not available for docker.io. Available: 20.10.24+dfsg1-1+deb12u1+b6'
    )
    expect(runner.lines()).toEqual([
      'apt-get -y -q -o DPkg::Lock::Timeout=10 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold update',
      'apt-cache madison docker.io'
    ])
  })

  it('installs the resolved version with sudo, removes without purging, and holds it', async () => {
    const runner = new FakeRunner([[['apt-cache', 'madison'], {stdout: MADISON}]], false)
    await enginePhase.apply(plan('20.10.24'), context(runner, '20.10.24'))
    // Every change needs root: program, verb and last argument of each, in order.
    const root = runner.calls
      .filter(c => c.options.root)
      .map(c => [
        c.argv[0],
        c.argv.find(a => ['update', 'remove', 'install', 'hold', '-TERM'].includes(a)),
        c.argv.at(-1)
      ])
    expect(root).toEqual([
      ['apt-get', 'update', 'update'],
      ['kill', '-TERM', '999999'],
      ['apt-get', 'remove', 'docker-ce'],
      ['apt-get', 'install', 'docker.io=20.10.24+dfsg1-1+deb12u1+b6'],
      ['apt-mark', 'hold', 'docker.io']
    ])
    expect(runner.lines().some(l => l.includes('purge'))).toBe(false)
    expect(runner.calls.find(c => c.argv[0] === 'apt-get')?.options.env).toEqual({
      DEBIAN_FRONTEND: 'noninteractive',
      NEEDRESTART_MODE: 'l'
    })
  })

  it("previews apt's own removals in a dry run, reading only, when the lists are the ones it uses", async () => {
    const simulated =
      'NOTE: This is only a simulation!\nRemv docker-ce [5:28.5.2-1~debian.12~bookworm]\nRemv old-shim [1]\nInst docker.io (20.10.24+dfsg1-1+deb12u1+b6 Debian:12 [amd64])\n'
    const runner = new FakeRunner([[['apt-get', '-s'], {stdout: simulated}]], false)
    const ctx = context(runner, '')
    // A bare host whose lists know docker.io, Docker's docker-ce half removed: the plan removes
    // docker-ce itself, apt would remove old-shim too.
    const facts: EngineFacts = {
      client: false,
      installed: new Map([['docker-ce', '5:28.5.2-1~debian.12~bookworm']]),
      held: new Set(),
      snap: false,
      manager: 'direct',
      candidates: new Map([['docker.io', '20.10.24+dfsg1-1+deb12u1+b6']]),
      debs: [],
      provided: new Set()
    }
    const p = enginePhase.plan(facts, ctx)
    expect(p.actions.map(a => a.kind)).not.toContain('apt-update')
    expect(await enginePhase.preview?.(p, ctx)).toEqual([
      'Installing the engine also removes old-shim (apt: they depend on or conflict with the new packages). Removed, not purged: their configuration stays.'
    ])
    expect(runner.lines().filter(l => l.startsWith('apt-get'))).toEqual([
      `apt-get -s -q install --no-install-recommends ${p.actions.flatMap(a => (a.kind === 'install' ? a.packages : [])).join(' ')}`
    ])
    expect(runner.calls.some(c => c.options.root)).toBe(false)

    // With an update planned first the lists are not the ones the install reads: no guess.
    const before = new FakeRunner([], false)
    expect(await enginePhase.preview?.(plan('20.10.24'), context(before, '20.10.24'))).toEqual([])
    expect(before.calls).toEqual([])
  })
})
