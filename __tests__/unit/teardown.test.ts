/** Teardown: what a job left is removed only where it is provably the job's (table tests of the plan). */
import {spawn, spawnSync} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {describe, expect, it} from '@jest/globals'
import type {CommandResult, RunOptions} from '../../src/exec/runner.js'
import {endProcesses, goneAlready, tearDown} from '../../src/phases/teardown/apply.js'
import {teardownLines} from '../../src/phases/teardown/facts.js'
import {parseTeardownInputs, teardownOn} from '../../src/phases/teardown/inputs.js'
import {
  containersOfCgroup,
  gpuAccess,
  inHostPidNamespace,
  idleMemory,
  parseContainers,
  parseGpuMemory,
  parseGpuProcesses,
  parseNetworks,
  QUERY_MEMORY,
  QUERY_PROCESSES,
  type ContainerFacts
} from '../../src/phases/teardown/objects.js'
import {
  judgeContainer,
  planTeardown,
  removedItems,
  type GpuProcess,
  type TeardownFacts
} from '../../src/phases/teardown/plan.js'
import {processIdentity} from '../../src/system/process.js'
import {FakeRunner} from './fake-runner.js'

const U = (n: number): string => `GPU-${String(n).repeat(8)}-1111-4111-8111-111111111111`
const SINCE = Date.parse('2026-12-07T02:00:00Z')
const BEFORE = SINCE - 60_000
const DURING = SINCE + 60_000
const MANAGED = 'org.docker-gpu-setup.managed'
const RUNNER = 'a1b2c3'

function ctr(name: string, over: Partial<ContainerFacts> = {}): ContainerFacts {
  return {
    id: name.padEnd(64, '0'),
    name,
    created: DURING,
    running: true,
    pid: 0,
    labels: {},
    restart: 'no',
    gpus: {all: false, ids: []},
    networks: [],
    ...over
  }
}

function facts(
  over: Partial<TeardownFacts> = {},
  job: Partial<TeardownFacts['job']> = {}
): TeardownFacts {
  return {
    job: {
      pid: 900,
      start: '5000',
      since: SINCE,
      gpus: [U(0)],
      runnerLabel: RUNNER,
      alone: false,
      hostPid: true,
      dead: false,
      ...job
    },
    gpus: [0, 1, 2].map(index => ({index, uuid: U(index)})),
    otherLeases: new Map([[U(1), 'job other (org/repo run 7)']]),
    containers: [],
    networks: [],
    processes: [],
    managedLabel: MANAGED,
    ...over
  }
}

describe('judgeContainer', () => {
  const gpus = (...ids: string[]) => ({gpus: {all: false, ids}})
  const cases: [string, ContainerFacts, Partial<TeardownFacts['job']>, string | null][] = [
    [
      'its leased GPU by UUID, made during the job',
      ctr('a', gpus(U(0))),
      {},
      'remove: uses only GPU 0, leased to this job, and was made during it'
    ],
    [
      'its leased GPU by index',
      ctr('a', gpus('0')),
      {},
      'remove: uses only GPU 0, leased to this job, and was made during it'
    ],
    [
      "its GPU and another job's",
      ctr('a', gpus(U(0), U(1))),
      {},
      'keep: also uses GPU 1 (leased to job other (org/repo run 7))'
    ],
    [
      'its GPU and an unleased one',
      ctr('a', gpus(U(0), U(2))),
      {},
      'keep: also uses GPU 2 (not leased to this job)'
    ],
    [
      'its GPU, made before the job',
      ctr('a', {...gpus(U(0)), created: BEFORE}),
      {},
      'keep: uses GPU 0, but was made before this job began'
    ],
    [
      'every GPU',
      ctr('a', {gpus: {all: true, ids: []}}),
      {},
      "keep: can use every GPU (--gpus all or NVIDIA_VISIBLE_DEVICES=all), so it is not only this job's"
    ],
    [
      'every GPU, alone on the host',
      ctr('a', {gpus: {all: true, ids: []}}),
      {alone: true},
      'remove: can use every GPU, and was made during this job on a host where no other job ran'
    ],
    [
      "another job's GPU only, made during the job",
      ctr('a', gpus(U(1))),
      {},
      "keep: made during this job, but other jobs may run on this host: not certain it is this job's"
    ],
    ["another job's GPU only, made before", ctr('a', {...gpus(U(1)), created: BEFORE}), {}, null],
    [
      "the runner's label, made during the job",
      ctr('a', {labels: {[RUNNER]: ''}}),
      {},
      "remove: the runner's job or service container, made during this job"
    ],
    [
      "the runner's label, made during the job, at the job's own post step",
      ctr('a', {labels: {[RUNNER]: ''}}),
      {beforeRunnerCleanup: true},
      "keep: the runner's job or service container: the runner removes it after the job's post steps, which may still use it"
    ],
    [
      "the runner's label, made before",
      ctr('a', {labels: {[RUNNER]: ''}, created: BEFORE}),
      {},
      'keep: left by an earlier job of this runner (the runner removes it itself)'
    ],
    [
      "another runner's label, made during the job",
      ctr('a', {labels: {f00ba4: ''}}),
      {},
      "keep: made during this job, but other jobs may run on this host: not certain it is this job's"
    ],
    [
      "another runner's label, made during the job, alone",
      ctr('a', {labels: {f00ba4: ''}}),
      {alone: true},
      'remove: made during this job, on a host where no other job ran meanwhile'
    ],
    [
      "the action's registry, made during the job",
      ctr('r', {labels: {[MANAGED]: 'true'}}),
      {},
      "keep: the action's own registry or cache (the cleanup input decides)"
    ],
    [
      "the action's registry, made before",
      ctr('r', {labels: {[MANAGED]: 'true'}, created: BEFORE}),
      {},
      null
    ],
    [
      'a service (restart always), alone',
      ctr('s', {restart: 'always'}),
      {alone: true},
      'keep: made during this job, but restarts with Docker (--restart always): a service'
    ],
    ['nothing of the job, made before', ctr('x', {created: BEFORE}), {alone: true}, null],
    [
      'a container that restarts on failure, alone',
      ctr('s', {restart: 'on-failure'}),
      {alone: true},
      'keep: made during this job, but restarts with Docker (--restart on-failure): a service'
    ],
    [
      "the runner's label, made during the job, outside the host's pid namespace",
      ctr('a', {labels: {[RUNNER]: ''}}),
      {hostPid: false},
      "keep: made during this job with this runner's label, but this job does not see the host's processes (another pid namespace): runners out of its sight may share its label and window"
    ],
    [
      "made during the job, alone as far as it sees, outside the host's pid namespace",
      ctr('a'),
      {alone: true, hostPid: false},
      "keep: made during this job, but this job does not see the host's processes (another pid namespace): runners out of its sight may share its label and window"
    ],
    [
      "every GPU, alone as far as it sees, outside the host's pid namespace",
      ctr('a', {gpus: {all: true, ids: []}}),
      {alone: true, hostPid: false},
      "keep: can use every GPU (--gpus all or NVIDIA_VISIBLE_DEVICES=all), so it is not only this job's"
    ],
    [
      "its leased GPU, outside the host's pid namespace (the GPUs are proof still)",
      ctr('a', {...gpus(U(0)), labels: {[RUNNER]: ''}}),
      {hostPid: false},
      'remove: uses only GPU 0, leased to this job, and was made during it'
    ],
    [
      'a dead job: its GPU, made in its window',
      ctr('a', gpus(U(0))),
      {dead: true, runnerLabel: undefined},
      'remove: uses only GPU 0, leased to this job, and was made during it'
    ]
  ]
  it.each(cases)('%s', (_, c, job, expected) => {
    const v = judgeContainer(c, facts({}, job))
    expect(v === undefined ? null : `${v.remove ? 'remove' : 'keep'}: ${v.why}`).toBe(expected)
  })
})

describe('planTeardown', () => {
  const proc = (pid: number, over: Partial<GpuProcess> = {}): GpuProcess => ({
    pid,
    start: '6000',
    name: 'python3',
    uuids: [U(0)],
    fromWorker: false,
    ...over
  })

  it("removes the job's processes, keeps others on its GPUs, and ignores other GPUs", () => {
    const plan = planTeardown(
      facts({
        processes: [
          proc(10, {fromWorker: true, start: '1'}),
          proc(11),
          proc(12, {start: '4999'}),
          proc(13, {uuids: [U(0), U(1)]}),
          proc(14, {uuids: [U(1)]}),
          proc(900, {start: '5000'})
        ]
      })
    )
    expect(plan.processes.map(p => p.pid)).toEqual([10, 11])
    expect(removedItems(plan).map(i => i.why)).toEqual([
      "started by this job's worker",
      "on this job's GPUs only, started during the job"
    ])
    expect(plan.kept).toEqual([
      {kind: 'process', id: '12 (python3)', why: "on this job's GPUs, but started before the job"},
      {
        kind: 'process',
        id: '13 (python3)',
        why: 'also runs on GPU 1 (leased to job other (org/repo run 7))'
      }
    ])
  })

  it('lets a process in a container go or stay with its container', () => {
    const gone = ctr('gone', {gpus: {all: false, ids: [U(0)]}})
    const stays = ctr('stays', {gpus: {all: true, ids: []}})
    const plan = planTeardown(
      facts({
        containers: [gone, stays],
        processes: [proc(20, {container: gone.id}), proc(21, {container: stays.id})]
      })
    )
    expect(plan.containers.map(c => c.name)).toEqual(['gone'])
    expect(plan.processes).toEqual([])
    expect(plan.kept.map(k => `${k.kind} ${k.id}: ${k.why}`)).toEqual([
      "container stays: can use every GPU (--gpus all or NVIDIA_VISIBLE_DEVICES=all), so it is not only this job's",
      'process 21 (python3): runs in container stays, which is kept'
    ])
  })

  it("removes a network made during the job that only the job's containers use, or its runner labelled", () => {
    const net = (id: string, over = {}) => ({id, name: id, created: DURING, labels: {}, ...over})
    const plan = planTeardown(
      facts({
        containers: [
          ctr('mine', {gpus: {all: false, ids: [U(0)]}, networks: ['n-mine', 'n-shared']}),
          ctr('theirs', {created: BEFORE, networks: ['n-shared']})
        ],
        networks: [
          net('n-mine'),
          net('n-shared'),
          net('n-runner', {labels: {[RUNNER]: ''}}),
          net('n-old', {created: BEFORE}),
          net('n-empty')
        ]
      })
    )
    expect(plan.networks.map(n => n.name)).toEqual(['n-mine', 'n-runner'])
    expect(plan.kept.filter(k => k.kind === 'network')).toEqual([
      {kind: 'network', id: 'n-shared', why: 'made during this job, but also used by theirs'},
      {
        kind: 'network',
        id: 'n-empty',
        why: "made during this job and unused, but other jobs may run on this host: not certain it is this job's"
      }
    ])
    // Alone on the host, an unused network made during the job is the job's.
    expect(
      planTeardown(facts({networks: [net('n-empty')]}, {alone: true})).networks.map(n => n.name)
    ).toEqual(['n-empty'])
  })

  it("takes no proof from the runner's label or the window outside the host's pid namespace", () => {
    const net = {id: 'n', name: 'github_network_1', created: DURING, labels: {[RUNNER]: ''}}
    const plan = planTeardown(facts({networks: [net]}, {alone: true, hostPid: false}))
    expect(plan.networks).toEqual([])
    expect(plan.kept.map(k => k.id)).toEqual(['github_network_1'])
  })

  it('removes a compose project whole, each container on its own proof, or keeps it whole', () => {
    const of = (p: string) => ({labels: {'com.docker.compose.project': p}})
    const plan = planTeardown(
      facts(
        {
          containers: [
            ctr('web-1', {...of('web'), gpus: {all: false, ids: [U(0)]}}),
            ctr('web-db-1', {...of('web'), created: BEFORE}),
            ctr('app-1', {...of('app'), gpus: {all: false, ids: [U(0)]}}),
            ctr('app-2', {...of('app'), labels: {...of('app').labels, [RUNNER]: ''}})
          ]
        },
        {}
      )
    )
    expect(plan.containers.map(c => c.name)).toEqual(['app-1', 'app-2'])
    expect(plan.kept).toEqual([
      {
        kind: 'container',
        id: 'web-1',
        why: "of compose project web, whose web-db-1 is not this job's"
      }
    ])
    // The window alone is proof for each: the project goes whole.
    const alone = planTeardown(
      facts({containers: [ctr('x-1', of('x')), ctr('x-2', of('x'))]}, {alone: true})
    )
    expect(alone.containers.map(c => c.name)).toEqual(['x-1', 'x-2'])
  })

  it('plans nothing on a host the job left clean', () => {
    const plan = planTeardown(facts({containers: [ctr('old', {created: BEFORE})]}))
    expect([plan.containers, plan.processes, plan.networks, plan.kept]).toEqual([[], [], [], []])
  })
})

describe('what Docker and nvidia-smi say', () => {
  it('reads the GPUs a container reaches from --gpus and, under the NVIDIA runtime, its environment', () => {
    const cases: [object, {all: boolean; ids: string[]}][] = [
      [
        {
          HostConfig: {
            DeviceRequests: [{Driver: '', Count: 0, DeviceIDs: [U(0)], Capabilities: [['gpu']]}]
          }
        },
        {all: false, ids: [U(0)]}
      ],
      [
        {
          HostConfig: {
            DeviceRequests: [{Driver: '', Count: -1, DeviceIDs: null, Capabilities: [['gpu']]}]
          }
        },
        {all: true, ids: []}
      ],
      [
        {HostConfig: {DeviceRequests: [{Driver: '', Count: 2, Capabilities: [['gpu']]}]}},
        {all: true, ids: []}
      ],
      [
        {HostConfig: {DeviceRequests: [{Driver: 'other', Count: -1, Capabilities: [['tpu']]}]}},
        {all: false, ids: []}
      ],
      [
        {Config: {Env: ['NVIDIA_VISIBLE_DEVICES=all']}, HostConfig: {Runtime: 'runc'}},
        {all: false, ids: []}
      ],
      [
        {Config: {Env: ['NVIDIA_VISIBLE_DEVICES=all']}, HostConfig: {Runtime: 'nvidia'}},
        {all: true, ids: []}
      ],
      [
        {Config: {Env: [`NVIDIA_VISIBLE_DEVICES=0, ${U(2)}`]}, HostConfig: {Runtime: 'nvidia'}},
        {all: false, ids: ['0', U(2)]}
      ],
      [
        {Config: {Env: ['NVIDIA_VISIBLE_DEVICES=void']}, HostConfig: {Runtime: 'nvidia'}},
        {all: false, ids: []}
      ],
      // CDI (`--device nvidia.com/gpu=…`, Docker 25 and later): no capabilities, driver cdi.
      [
        {HostConfig: {DeviceRequests: [{Driver: 'cdi', DeviceIDs: [`nvidia.com/gpu=${U(0)}`]}]}},
        {all: false, ids: [U(0)]}
      ],
      [
        {
          HostConfig: {
            DeviceRequests: [{Driver: 'cdi', DeviceIDs: ['nvidia.com/gpu=1', 'vendor.com/x=a']}]
          }
        },
        {all: false, ids: ['1']}
      ],
      [
        {HostConfig: {DeviceRequests: [{Driver: 'cdi', DeviceIDs: ['nvidia.com/gpu=all']}]}},
        {all: true, ids: []}
      ],
      [
        {HostConfig: {DeviceRequests: [{Driver: 'cdi', DeviceIDs: ['vendor.com/fpga=0']}]}},
        {all: false, ids: []}
      ]
    ]
    for (const [inspect, access] of cases) expect(gpuAccess(inspect)).toEqual(access)
  })

  it("parses docker inspect of containers (a capture of Docker 20.10's answer)", () => {
    const list = parseContainers(readFileSync('__fixtures__/docker/container-inspect.json', 'utf8'))
    expect(list[0]).toMatchObject({
      id: 'feacf2e77adba20ec9f51c2e805358b6a9d973f818bfe1eaaa1598761cb611c1',
      name: 'stopped-old',
      created: Date.parse('2026-12-01T01:43:08.664Z'),
      running: false,
      restart: 'no',
      gpus: {all: false, ids: []}
    })
  })

  it("parses docker network inspect, leaving out Docker's own networks", () => {
    const json = JSON.stringify([
      {Name: 'bridge', Id: 'b1', Created: '2026-12-07T01:00:00.1Z', Labels: {}},
      {
        Name: 'github_network_0f3a',
        Id: 'n1',
        Created: '2026-12-07T02:01:00.123456789Z',
        Labels: {a1b2c3: ''}
      }
    ])
    expect(parseNetworks(json)).toEqual([
      {
        id: 'n1',
        name: 'github_network_0f3a',
        created: Date.parse('2026-12-07T02:01:00.123Z'),
        labels: {a1b2c3: ''}
      }
    ])
  })

  it('finds the containers of a process from its cgroup (systemd and cgroupfs drivers, nested)', () => {
    const [outer, inner] = ['a'.repeat(64), 'f'.repeat(64)]
    expect(containersOfCgroup(`0::/system.slice/docker-${inner}.scope\n`)).toEqual([inner])
    expect(containersOfCgroup(`12:memory:/docker/${inner}\n`)).toEqual([inner])
    // A host that is a container itself (cgroup v1 as its processes see it): its own ID comes first.
    expect(
      containersOfCgroup(`4:memory:/docker/${outer}\n0::/docker/${outer}/docker/${inner}\n`)
    ).toEqual([outer, outer, inner])
    expect(containersOfCgroup('0::/user.slice/user-1000.slice/session-3.scope\n')).toEqual([])
  })

  it("tells the host's pid namespace from running containers' pids and cgroups", () => {
    const [a, b] = ['a'.repeat(64), 'b'.repeat(64)]
    const cg: Record<number, string> = {
      10: `0::/system.slice/docker-${a}.scope\n`,
      20: `0::/system.slice/docker-${b}.scope\n`,
      30: '0::/user.slice/user-1000.slice/session-3.scope\n'
    }
    const read = (pid: number) => cg[pid]
    const run = (id: string, pid: number) => ({...ctr('c'), id, pid})
    const cases: [string, ContainerFacts[], boolean][] = [
      ['every running container found in its cgroup', [run(a, 10), run(b, 20)], true],
      ['a stopped one does not count', [run(a, 10), {...run(b, 0), running: false}], true],
      ['one pid is another process here', [run(a, 10), run(b, 30)], false],
      ['one pid is not here', [run(a, 10), run(b, 40)], false],
      ['nothing runs: nothing proves it', [{...run(a, 0), running: false}], false]
    ]
    for (const [what, cs, want] of cases)
      expect([what, inHostPidNamespace(cs, read)]).toEqual([what, want])
  })

  it('parses the per-process and memory queries', () => {
    expect(
      parseGpuProcesses(`${U(0)}, 4711, python3, 1012\n${U(1)}, 12, /usr/bin/my, app, [N/A]\n`)
    ).toEqual([
      {uuid: U(0), pid: 4711, name: 'python3', memory: 1012},
      {uuid: U(1), pid: 12, name: '/usr/bin/my,app', memory: 0}
    ])
    expect(
      parseGpuMemory(`0, ${U(0)}, 3, 81559\n1, ${U(1)}, [N/A], 81559\nNo devices were found\n`)
    ).toEqual([
      {index: 0, uuid: U(0), used: 3, total: 81559},
      {index: 1, uuid: U(1), used: 0, total: 81559}
    ])
    expect([idleMemory(81559), idleMemory(4096)]).toEqual([816, 64])
  })
})

describe('teardown input and summary', () => {
  it('is on with auto only where the job leases GPUs', () => {
    const on = (v: string, gpus: boolean) => teardownOn(parseTeardownInputs({teardown: v}), gpus)
    expect([on('auto', true), on('auto', false), on('true', false), on('false', true)]).toEqual([
      true,
      false,
      true,
      false
    ])
    expect(() => parseTeardownInputs({teardown: 'yes'})).toThrow(
      'Input \'teardown\' has an invalid value "yes": use one of auto, true, false'
    )
  })

  it('says one line per kind', () => {
    expect(
      teardownLines({
        removed: [
          {kind: 'container', id: 'a', why: 'w'},
          {kind: 'process', id: '7 (python3)', why: 'w'}
        ],
        kept: [{kind: 'container', id: 'b', why: 'can use every GPU'}]
      })
    ).toEqual([
      'Containers: removed 1 (a); kept 1 (b: can use every GPU)',
      'GPU processes: removed 1 (7 (python3))'
    ])
    expect(teardownLines({removed: [], kept: []})).toEqual([])
  })
})

describe('tearDown (effects, with a recording runner)', () => {
  /** Answers like Docker and nvidia-smi would; `kill` really signals, so processes really end. */
  class Host extends FakeRunner {
    /** The GPU process, listed (with its memory) as long as it runs, as the driver lists it. */
    gpuPid = 0
    override run(argv: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
      if (argv[0] === 'kill') process.kill(Number(argv[2]), `SIG${argv[1].slice(1)}`)
      const runs = processIdentity(this.gpuPid) !== undefined
      if (argv[1] === QUERY_PROCESSES[0]) {
        this.calls.push({argv: [...argv], options})
        const stdout = runs ? `${U(0)}, ${this.gpuPid}, sleep, 900\n` : ''
        return Promise.resolve({exitCode: 0, stdout, stderr: ''})
      }
      if (argv[1] === QUERY_MEMORY[0]) {
        this.calls.push({argv: [...argv], options})
        const stdout = `0, ${U(0)}, ${runs ? 902 : 2}, 81559\n1, ${U(1)}, 0, 81559\n`
        return Promise.resolve({exitCode: 0, stdout, stderr: ''})
      }
      return super.run(argv, options)
    }
  }

  it('counts a container Docker already removes (a --rm one) as removed', () => {
    const cases: [string, boolean][] = [
      ['Error response from daemon: No such container: abc', true],
      [
        'Error response from daemon: removal of container 1f0c2e3a4b5d is already in progress',
        true
      ],
      ['Error response from daemon: cannot remove container: device or resource busy', false]
    ]
    for (const [stderr, gone] of cases)
      expect([stderr, goneAlready(stderr)]).toEqual([stderr, gone])
  })

  it('checks each process right before its signal: one that ended meanwhile is not signalled', async () => {
    const [a, b] = [spawn('sleep', ['60']), spawn('sleep', ['60'])]
    const ids = [a, b].map(c => processIdentity(c.pid as number) as {pid: number; start: string})
    const runner = new (class extends FakeRunner {
      override run(argv: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
        if (argv[0] === 'kill' && Number(argv[2]) === a.pid) {
          a.kill('SIGKILL')
          // While the first is signalled, the second ends (its pid free for another process).
          b.kill('SIGKILL')
          const until = Date.now() + 5000
          while (processIdentity(b.pid as number) && Date.now() < until)
            spawnSync('sleep', ['0.01'])
        }
        return super.run(argv, options)
      }
    })()
    const ps = ids.map(p => ({...p, name: 'sleep', uuids: [U(0)], fromWorker: true}))
    expect(await endProcesses(runner, ps)).toEqual([])
    expect(runner.lines()).toEqual([`kill -TERM ${a.pid}`])
  })

  it('stops and removes the containers, ends the processes, and hands on only an idle GPU', async () => {
    const child = spawn('sleep', ['60'], {stdio: 'ignore'})
    const exited = new Promise(r => child.once('exit', r))
    const me = processIdentity(process.pid) as {pid: number; start: string}
    const created = new Date().toISOString()
    const inspect = [
      {
        Id: 'c'.repeat(64),
        Name: '/left',
        Created: created,
        State: {Running: true},
        Config: {Labels: {}},
        HostConfig: {DeviceRequests: [{Count: 0, DeviceIDs: [U(0)], Capabilities: [['gpu']]}]},
        NetworkSettings: {Networks: {}}
      }
    ]
    const runner = new Host([
      [['docker', 'version'], {stdout: '27.3.1\n'}],
      [['docker', 'ps'], {stdout: `${'c'.repeat(64)}\n`}],
      [['docker', 'inspect'], {stdout: JSON.stringify(inspect)}],
      [['docker', 'network', 'ls'], {stdout: ''}]
    ])
    runner.gpuPid = child.pid as number
    // Started after "the job": the worker stands for it, its start just before the child's.
    const out = await tearDown(runner, {
      pid: me.pid,
      start: me.start,
      gpus: [U(0)],
      dead: false,
      otherLeases: new Map(),
      managedLabel: MANAGED
    })
    await exited
    expect(out.result.removed.map(i => `${i.kind} ${i.id}`)).toEqual([
      'container left',
      `process ${child.pid} (sleep)`
    ])
    expect(runner.lines()).toEqual(
      expect.arrayContaining([
        `docker stop --time 10 ${'c'.repeat(64)}`,
        `docker rm --force --volumes ${'c'.repeat(64)}`,
        `kill -TERM ${child.pid}`
      ])
    )
    expect(runner.lines()).not.toContain(`kill -KILL ${child.pid}`)
    // Its process gone, the GPU's memory is back to what an idle GPU shows: it may be handed on.
    expect(out).toMatchObject({idle: [U(0)], busy: []})
  }, 60_000)
})
