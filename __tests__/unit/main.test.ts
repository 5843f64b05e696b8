import {mkdtempSync, readdirSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import * as path from 'node:path'
import {beforeEach, describe, expect, it, jest} from '@jest/globals'
import {HostError} from '../../src/errors.js'
import type {HostInfo} from '../../src/host.js'
import type {Fact, Phase, PhasePlan} from '../../src/phases/pipeline.js'
import {parseOsRelease} from '../../src/system/os-release.js'
import {processIdentity} from '../../src/system/process.js'
import {fakeCore, fakeLock, mapState} from './fake-core.js'
import {FakeRunner} from './fake-runner.js'

// Modules that import @actions/core are imported only after it is mocked (below), so that every
// one of them gets the fake: no static import of them above this line.
let env: NodeJS.ProcessEnv = {}
const core = fakeCore(() => env)
jest.unstable_mockModule('@actions/core', () => core.module)
// tool-cache imports names from @actions/core; the phases never download in these tests.
jest.unstable_mockModule('@actions/tool-cache', () => ({downloadTool: jest.fn()}))
const {run, phaseStages} = await import('../../src/main.js')
const {post} = await import('../../src/post.js')
const {stage} = await import('../../src/phases/pipeline.js')
const {OUTPUT_NAMES} = await import('../../src/outputs.js')
const {GPUS, PUSH, REGISTRY} = await import('../../src/entries.js')

const HOST: HostInfo = {
  os: parseOsRelease('ID=debian\nVERSION_CODENAME=bookworm\n'),
  isRoot: true,
  user: 'root',
  systemd: false,
  tempDir: '/tmp/dgs-unit',
  identity: {names: ['gpu-01'], addresses: ['127.0.0.1']}
}

/** Runner-style environment: INPUT_<NAME> (hyphens kept), and a summary file. */
function inputs(values: Record<string, string> = {}): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {GITHUB_STEP_SUMMARY: '/tmp/dgs-unit/summary'}
  for (const [k, v] of Object.entries(values)) out[`INPUT_${k.toUpperCase()}`] = v
  return out
}

type Calls = string[]
type Deps = NonNullable<Parameters<typeof run>[0]>

/** The main step on the fake host with `env` as its inputs; `deps` replace the defaults here. */
function runMain(deps: Deps): Promise<void> {
  return run({
    env,
    runner: new FakeRunner(),
    state: mapState(),
    readHost: () => Promise.resolve(HOST),
    lockHost: fakeLock().lockHost,
    stages: () => [],
    ...deps
  })
}

/** A phase that records each call, plans `steps`, and can fail in one of its parts. */
function fakePhase(
  name: string,
  calls: Calls,
  o: {
    steps?: string[]
    fail?: 'detect' | 'apply'
    onDetect?: (outputs: object) => void
    shows?: Fact[]
    preview?: string[]
  } = {}
): Phase<unknown, string, PhasePlan> {
  const steps = (o.steps ?? []).map(description => ({description}))
  return {
    name,
    detect: ctx => {
      calls.push(`${name}: detect`)
      o.onDetect?.(ctx.outputs)
      if (o.shows) ctx.show(o.shows)
      if (o.fail === 'detect') return Promise.reject(new HostError(`${name} cannot read the host`))
      return Promise.resolve(`${name} facts`)
    },
    plan: facts => {
      calls.push(`${name}: plan ${facts}`)
      return {found: `${name} found`, steps, warnings: []}
    },
    ...(o.preview && {
      preview: () => {
        calls.push(`${name}: preview`)
        return Promise.resolve(o.preview ?? [])
      }
    }),
    apply: () => {
      calls.push(`${name}: apply`)
      if (o.fail === 'apply') return Promise.reject(new HostError(`${name} broke`))
      return Promise.resolve()
    },
    verify: () => {
      calls.push(`${name}: verify`)
      return Promise.resolve(`${name} verified`)
    },
    check: () => {
      calls.push(`${name}: check`)
      return Promise.resolve()
    }
  }
}

beforeEach(() => {
  for (const list of Object.values(core.record)) {
    if (Array.isArray(list)) list.length = 0
    else (list as Map<string, string>).clear()
  }
})

describe('the main step', () => {
  it('never applies in a dry run: it detects and plans every phase, takes no lock, runs nothing', async () => {
    env = inputs({'dry-run': 'true'})
    const calls: Calls = []
    const runner = new FakeRunner()
    const lock = fakeLock()
    await runMain({
      runner,
      lockHost: lock.lockHost,
      stages: (_inputs, shared) =>
        ['engine', 'daemon'].map(n =>
          stage(
            fakePhase(n, calls, {
              steps: [`change ${n}`],
              preview: n === 'engine' ? ['apt also removes old-engine'] : undefined
            }),
            {...shared, inputs: undefined}
          )
        )
    })
    expect(calls).toEqual([
      'engine: detect',
      'engine: plan engine facts',
      'engine: preview',
      'daemon: detect',
      'daemon: plan daemon facts'
    ])
    expect(runner.calls).toEqual([])
    expect(lock.taken).toBe(0)
    expect(core.record.failed).toEqual([])
    expect(core.record.summaries[0]).toContain('📝 dry run: nothing was changed')
    expect(core.record.summaries[0]).toContain(
      '| engine | 📝 would change: 2 steps | engine found |'
    )
    expect(core.record.summaries[0]).toContain(
      '- engine\n  - change engine\n  - apt also removes old-engine\n'
    )
  })

  it('never applies in a dry run of the real phases: every command it runs only reads', async () => {
    env = inputs({'dry-run': 'true', images: 'app:1'})
    // Docker does not answer: the phases plan to install and start it, and must not.
    const runner = new FakeRunner([[['docker'], {exitCode: 1}]])
    await runMain({
      runner,
      stages: phaseStages
    })
    const READS = [
      'dpkg-query -W',
      'docker version',
      'docker info',
      'docker inspect',
      'docker image inspect',
      'apt-cache policy',
      'apt-mark showhold',
      'nvidia-smi',
      'systemctl is-enabled',
      'cat --',
      'ss -ltnpH'
    ]
    expect(runner.lines()).toContain('docker version --format {{.Server.Version}}')
    const changing = runner.lines().filter(l => !READS.some(r => l.startsWith(r)))
    expect(changing).toEqual([])
    for (const phase of ['Docker engine', 'Local registry', 'Push images']) {
      expect(core.record.summaries[0]).toContain(`| ${phase} | 📝 would change: 1 step |`)
    }
    expect(core.record.failed).toEqual([])
    expect(core.record.groups).toEqual([
      'GPU health',
      'GPU leases',
      'Proxies',
      'Docker engine',
      'Daemon config and NVIDIA runtime',
      'NVIDIA driver hold',
      'GPU isolation',
      'Local registry',
      'Disk space',
      'Push images'
    ])
  })

  it('sets every output and writes the summary when a phase fails, and stops there', async () => {
    env = inputs()
    const calls: Calls = []
    const lock = fakeLock()
    await runMain({
      lockHost: lock.lockHost,
      stages: (_inputs, shared) => [
        stage(
          fakePhase('engine', calls, {
            onDetect: outputs => Object.assign(outputs, {dockerVersion: '27.3.1'})
          }),
          {...shared, inputs: undefined}
        ),
        stage(
          fakePhase('daemon', calls, {steps: ['write'], fail: 'apply', preview: ['dry runs only']}),
          {...shared, inputs: undefined}
        ),
        stage(fakePhase('registry', calls), {...shared, inputs: undefined})
      ]
    })
    expect(core.record.failed).toEqual(['daemon broke'])
    expect(calls).not.toContain('registry: detect')
    expect(calls).toContain('daemon: apply')
    expect(calls).not.toContain('daemon: preview')
    expect(lock.released).toBe(1)
    expect([...core.record.outputs.keys()]).toEqual([...OUTPUT_NAMES])
    expect(core.record.outputs.get('docker-version')).toBe('27.3.1')
    expect(core.record.outputs.get('registry')).toBe('localhost:5000')
    expect(core.record.outputs.get('images')).toBe('')
    const summary = core.record.summaries[0]
    expect(summary).toContain('## docker-gpu-setup: ❌ failed')
    expect(summary).toContain('> **Error:** daemon broke')
    expect(summary).toContain('| daemon | ❌ failed | daemon found |')
    expect(summary).toContain('| engine | ✅ unchanged |')
  })

  it("shows each phase's facts in its own summary row, as the phase showed them", async () => {
    env = inputs()
    await runMain({
      stages: (_inputs, shared) => [
        stage(fakePhase('engine', [], {shows: [{label: 'Docker', value: '27.3.1'}]}), {
          ...shared,
          inputs: undefined
        }),
        stage(fakePhase('daemon', [], {shows: [{label: 'runtimes', value: ['nvidia', 'runc']}]}), {
          ...shared,
          inputs: undefined
        }),
        stage(fakePhase('registry', []), {...shared, inputs: undefined})
      ]
    })
    const summary = core.record.summaries[0]
    expect(summary).toContain('| engine | ✅ unchanged | Docker `27.3.1` |')
    expect(summary).toContain('| daemon | ✅ unchanged | runtimes `nvidia`, `runc` |')
    // A phase that shows nothing keeps its own sentence.
    expect(summary).toContain('| registry | ✅ unchanged | registry found |')
  })

  it('sets every output and writes the summary when an input is bad, before any phase', async () => {
    env = inputs({'push-concurrency': '99'})
    const calls: Calls = []
    const state = mapState()
    await runMain({
      state,
      stages: (_inputs, shared) => [
        stage(fakePhase('engine', calls), {...shared, inputs: undefined})
      ]
    })
    expect(core.record.failed).toEqual([
      `Input 'push-concurrency' has an invalid value "99": use a whole number from 1 to 16`
    ])
    expect(calls).toEqual([])
    expect([...core.record.outputs.values()].every(v => v === '')).toBe(true)
    expect(core.record.outputs.size).toBe(OUTPUT_NAMES.length)
    expect(core.record.summaries[0]).toContain("> **Error:** Input 'push-concurrency'")
    // No phase ran: no table.
    expect(core.record.summaries[0]).not.toMatch(/^\|/m)
    expect(state.values.has('cleanup')).toBe(false)
  })

  it('puts the proxy inputs in the run’s environment, which every command inherits (sudo keeps them)', async () => {
    env = inputs({'http-proxy': 'http://proxy.corp:3128', 'no-proxy': '.corp'})
    env.https_proxy = 'http://from-the-runner:1'
    await runMain({})
    expect(core.record.failed).toEqual([])
    expect(env.http_proxy).toBe('http://proxy.corp:3128')
    expect(env.HTTP_PROXY).toBe('http://proxy.corp:3128')
    expect(env.no_proxy).toBe('.corp,localhost,127.0.0.0/8,::1,gpu-01')
    // A variable the inputs do not set stays as the runner had it.
    expect(env.https_proxy).toBe('http://from-the-runner:1')
  })

  it('writes no summary with summary: false, and still sets the outputs', async () => {
    env = inputs({summary: 'false'})
    await runMain({})
    expect(core.record.summaries).toEqual([])
    expect(core.record.outputs.size).toBe(OUTPUT_NAMES.length)
  })
})

/** The post step's host lock (counted) and users folder, the test's own. */
function postDeps() {
  const lock = fakeLock()
  return {lockHost: lock.lockHost, usersDir: mkdtempSync(path.join(tmpdir(), 'dgs-users-')), lock}
}

describe('the post step', () => {
  it('cleanup: registry keeps a container another live job uses, under the host lock, saying so', async () => {
    const deps = postDeps()
    const other = processIdentity(1)
    const me = processIdentity(process.ppid)
    const reg = 'docker-gpu-setup-registry'
    const mirror = 'docker-gpu-setup-mirror'
    // pid 1 uses the registry; a job that has ended used the mirror; this job itself, both.
    writeFileSync(
      path.join(deps.usersDir, `registry-user.${reg}.1.${other?.start}`),
      'job b (org/repo run 7), worker pid 1\n'
    )
    writeFileSync(path.join(deps.usersDir, `registry-user.${mirror}.4194303.5`), 'job gone\n')
    for (const c of [reg, mirror]) {
      writeFileSync(
        path.join(deps.usersDir, `registry-user.${c}.${me?.pid}.${me?.start}`),
        'job a\n'
      )
    }
    const state = mapState({
      cleanup: 'registry',
      'registry-containers': JSON.stringify([reg, mirror])
    })
    const runner = new FakeRunner()
    await post({runner, state, lockHost: deps.lockHost, usersDir: deps.usersDir})
    expect(runner.lines()).toEqual([`docker rm --force ${mirror}`])
    expect(core.record.infos).toContain(
      `cleanup: kept ${reg}, which this job started: another job uses it (job b (org/repo run 7), worker pid 1).`
    )
    expect(core.record.summaries).toEqual([
      `cleanup: kept the registry containers other jobs use: ${reg}: in use by job b (org/repo run 7), worker pid 1.\n`
    ])
    expect(deps.lock).toMatchObject({taken: 1, released: 1})
    // Only the live job's marker is left: this job's own and the ended job's are gone.
    expect(readdirSync(deps.usersDir)).toEqual([`registry-user.${reg}.1.${other?.start}`])
  })

  it('never fails the job: a failing command and unreadable state become warnings', async () => {
    const runner = new FakeRunner([[[], {exitCode: 1, stderr: 'permission denied'}]])
    const state = mapState({
      cleanup: 'all',
      'docker-config': '/tmp/dgs-unit/docker-config',
      'registry-containers': '["docker-gpu-setup-registry"]'
    })
    await expect(post({runner, state, ...postDeps()})).resolves.toBeUndefined()
    expect(core.record.failed).toEqual([])
    expect(core.record.warnings[0]).toMatch(
      /^cleanup failed: 'rm -rf -- \/tmp\/dgs-unit\/docker-config' exited with code 1/
    )

    await expect(
      post({
        runner: new FakeRunner(),
        state: mapState({cleanup: 'registry', 'registry-containers': '{'}),
        ...postDeps()
      })
    ).resolves.toBeUndefined()
    expect(core.record.failed).toEqual([])
  })

  it('releases the GPU leases the main step saved, whatever cleanup says, and waits for no lock', async () => {
    const uuid = 'GPU-00000000-0000-4000-8000-000000000000'
    const state = mapState({
      cleanup: 'none',
      'gpu-leases': JSON.stringify([{uuid, index: 0, pid: 10, start: '99'}])
    })
    const runner = new FakeRunner()
    await post({runner, state, ...postDeps()})
    // No lease file on this machine: it was released already; nothing is run, nothing fails.
    expect(core.record.infos).toContain(`GPU 0 (${uuid}): its lease was already released.`)
    expect(runner.calls).toEqual([])
    expect(core.record.failed).toEqual([])
  })

  it('with teardown, removes what the job left on its GPU before releasing it, and says so', async () => {
    const uuid = 'GPU-00000000-0000-4000-8000-000000000000'
    // This test's own process stands for the job's worker: its start time is real.
    const me = processIdentity(process.pid) as {pid: number; start: string}
    const state = mapState({
      cleanup: 'none',
      teardown: 'true',
      'gpu-leases': JSON.stringify([{uuid, index: 0, pid: me.pid, start: me.start}])
    })
    const left = {
      Id: 'c'.repeat(64),
      Name: '/left',
      Created: new Date().toISOString(),
      State: {Running: false},
      HostConfig: {DeviceRequests: [{Count: 0, DeviceIDs: [uuid], Capabilities: [['gpu']]}]}
    }
    const runner = new FakeRunner([
      [['docker', 'ps'], {stdout: `${left.Id}\n`}],
      [['docker', 'inspect'], {stdout: JSON.stringify([left])}],
      [
        ['nvidia-smi', '--query-gpu=index,uuid,memory.used,memory.total'],
        {stdout: `0, ${uuid}, 4, 81559\n`}
      ]
    ])
    await post({runner, state})
    expect(runner.lines()).toContain(`docker rm --force --volumes ${left.Id}`)
    expect(JSON.parse(core.record.outputs.get('teardown') ?? '{}')).toEqual({
      removed: [
        {
          kind: 'container',
          id: 'left',
          why: 'uses only GPU 0, leased to this job, and was made during it'
        }
      ],
      kept: []
    })
    expect(core.record.infos).toContain(`GPU 0 (${uuid}): its lease was already released.`)
    expect(core.record.infos.join('\n')).toContain('Teardown: Containers: removed 1 (left)')
    expect(core.record.warnings).toEqual([])
  })

  it.each([
    ['None', []],
    ['none', []],
    ['registry', ['docker rm --force docker-gpu-setup-registry']],
    ['All', ['docker rm --force docker-gpu-setup-registry']]
  ])('acts on cleanup: %s as the main step read it', async (cleanup, removed) => {
    // The main step runs with the raw input and saves what it parsed; the post step reads that.
    env = inputs({cleanup})
    const state = mapState()
    const startsRegistry: Phase<unknown, string, PhasePlan> = {
      ...fakePhase('registry', [], {steps: ['create the registry container']}),
      apply: (_plan, ctx) => {
        ctx.remember({registryContainers: ['docker-gpu-setup-registry']})
        return Promise.resolve()
      }
    }
    await runMain({
      state,
      stages: (_inputs, shared) => [stage(startsRegistry, {...shared, inputs: undefined})]
    })
    expect(core.record.failed).toEqual([])
    // The post step gets no inputs it could misread: only the saved state.
    env = {}
    const runner = new FakeRunner()
    await post({runner, state, ...postDeps()})
    expect(runner.lines()).toEqual(removed)
  })
})

describe('a sub-action', () => {
  it('push runs the push phase alone, reads only its own inputs, and sets only its outputs', async () => {
    // Inputs the push sub-action does not declare are ignored, whatever the environment holds.
    env = inputs({
      'dry-run': 'true',
      images: 'app:1',
      'start-registry': 'true',
      'install-docker': 'true'
    })
    const runner = new FakeRunner([[['docker'], {exitCode: 1}]])
    await runMain({runner, stages: phaseStages, entry: PUSH})
    expect(core.record.groups.slice(-1)).toEqual(['Push images'])
    expect(runner.lines().filter(l => /^(apt|dpkg|systemctl|nvidia-smi|ss )/.test(l))).toEqual([])
    expect(runner.lines().filter(l => l.includes('docker-gpu-setup-registry'))).toEqual([])
    expect([...core.record.outputs.keys()]).toEqual(['registry', 'images', 'digests'])
    expect(core.record.summaries.at(-1)).toMatch(/^## docker-gpu-setup\/push: /m)
  })

  it('registry runs the daemon and registry phases without the GPU runtime', async () => {
    env = inputs({'dry-run': 'true', 'gpu-runtime': 'nvidia'})
    const runner = new FakeRunner([[['docker'], {exitCode: 1}]])
    await runMain({runner, stages: phaseStages, entry: REGISTRY})
    expect(core.record.groups.slice(-2)).toEqual([
      'Daemon config and NVIDIA runtime',
      'Local registry'
    ])
    expect(runner.lines().filter(l => /nvidia|apt/.test(l))).toEqual([])
    expect(core.record.failed).toEqual([])
  })

  it.each([
    ['push', {images: 'app:1'}, 'no image was pushed'],
    ['registry', {}, 'no registry was started']
  ])(
    '%s fails when Docker does not answer instead of passing having done nothing',
    async (name, values, what) => {
      env = inputs(values)
      const runner = new FakeRunner([[['docker'], {exitCode: 1}]])
      await runMain({runner, stages: phaseStages, entry: name === 'push' ? PUSH : REGISTRY})
      expect(core.record.failed).toEqual([
        expect.stringContaining(`Docker does not answer, so ${what}`)
      ])
    }
  )

  it('gpus leases before the host lock and takes no lock', async () => {
    env = inputs({})
    const lock = fakeLock()
    const phases: string[][] = []
    await runMain({
      lockHost: lock.lockHost,
      stages: (_i, _s, only) => {
        phases.push([...only])
        return []
      },
      entry: GPUS
    })
    expect(phases).toEqual([['health', 'gpus']])
    expect(lock.taken).toBe(0)
    expect([...core.record.outputs.keys()]).toEqual([
      'gpu-uuids',
      'gpu-indexes',
      'docker-gpus',
      'docker-gpu-options',
      'cdi-devices',
      'gpu-health'
    ])
  })
})

describe('cleanup: all', () => {
  it('is taken as registry, with a warning that it is deprecated', async () => {
    env = inputs({cleanup: 'all'})
    const state = mapState()
    await runMain({state})
    expect(core.record.warnings).toEqual([
      'cleanup: all does what cleanup: registry does, and is deprecated: write cleanup: registry.'
    ])
    expect(core.record.failed).toEqual([])
  })
})

describe('the job-started hook', () => {
  it('runs the health gate before it leases: a host short of GPUs fails the job, no lease', async () => {
    const {jobStartedHook} = await import('../../src/main.js')
    // No nvidia-smi here: a host that should show two GPUs shows none.
    const runner = new FakeRunner()
    const config = {gpus: '1', gpuWait: 0, teardown: false, gpuHealth: 'fail' as const}
    await jobStartedHook({...config, gpuCountExpected: 2}, runner)
    expect(core.record.failed).toEqual([expect.stringMatching(/^gpu-health: .*drain this runner/)])
    expect(runner.lines().filter(l => l.includes('.lease'))).toEqual([])
  })
})
