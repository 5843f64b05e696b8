import {readFileSync} from 'node:fs'
import {describe, expect, it} from '@jest/globals'
import {HostError} from '../../src/errors.js'
import {jobIdentity, queryGpus} from '../../src/phases/gpus/detect.js'
import {publishLeases} from '../../src/phases/gpus/apply.js'
import {
  QUERY_APPS,
  QUERY_GPUS,
  busyness,
  gpuDevices,
  parseComputeApps,
  parseGpuQuery,
  type GpuDevice
} from '../../src/phases/gpus/gpu-query.js'
import type {GpuInputs} from '../../src/phases/gpus/inputs.js'
import {
  heldBy,
  jobDescription,
  leaseFileName,
  leaseText,
  parseLease,
  uuidOfLeaseFile,
  type JobIdentity,
  type Lease
} from '../../src/phases/gpus/lease.js'
import {planGpus, type GpuFacts, type LeaseView} from '../../src/phases/gpus/plan.js'
import {parseProcStat, processIdentity} from '../../src/system/process.js'
import {FakeRunner} from './fake-runner.js'

const sample = (name: string): string =>
  readFileSync(`__fixtures__/nvidia-smi-query/${name}`, 'utf8')
const DEVICES = gpuDevices(sample('gpus-4.csv'), sample('apps-4.csv'))
const [G0, G1, G2, G3] = DEVICES.map(d => d.uuid)

describe("nvidia-smi's script interface", () => {
  it('reads every GPU, N/A as 0, and counts the compute processes per GPU', () => {
    expect(DEVICES).toEqual([
      {
        index: 0,
        uuid: G0,
        name: 'NVIDIA H100 80GB HBM3',
        memoryUsed: 0,
        memoryTotal: 81559,
        processes: 0
      },
      {
        index: 1,
        uuid: G1,
        name: 'NVIDIA H100 80GB HBM3',
        memoryUsed: 40211,
        memoryTotal: 81559,
        processes: 2
      },
      {
        index: 2,
        uuid: G2,
        name: 'NVIDIA H100 80GB HBM3',
        memoryUsed: 1024,
        memoryTotal: 81559,
        processes: 1
      },
      {
        index: 3,
        uuid: G3,
        name: 'NVIDIA H100 80GB HBM3',
        memoryUsed: 0,
        memoryTotal: 81559,
        processes: 0
      }
    ])
    expect(G0).toBe('GPU-22b2c6ac-2d49-4863-197c-9c469071178a')
  })

  it('keeps a name with a comma whole, skips lines that are not GPUs, and matches UUIDs in any case', () => {
    const text = 'No devices were found\n7, GPU-aa, Tesla K80, rev A, 12, 11441\n'
    expect(parseGpuQuery(text)).toEqual([
      {index: 7, uuid: 'GPU-aa', name: 'Tesla K80, rev A', memoryUsed: 12, memoryTotal: 11441}
    ])
    expect(parseComputeApps('GPU-AA, 1, 2\n[N/A]\n')).toEqual(new Map([['gpu-aa', 1]]))
    expect(gpuDevices(text, 'gpu-aa, 9, 9')[0].processes).toBe(1)
  })

  it('says how busy a GPU is', () => {
    expect(DEVICES.map(busyness)).toEqual([
      'idle',
      '2 processes, 40211 MiB in use',
      '1 process, 1024 MiB in use',
      'idle'
    ])
  })
})

describe('a lease file', () => {
  const lease: Lease = {
    uuid: G1,
    index: 1,
    pid: 4242,
    start: '918273',
    job: 'train (org/repo run 7, runner gpu-2)',
    since: '2026-12-01T00:00:00.000Z'
  }

  it('is one JSON line, read back as it was written; anything else is not a lease', () => {
    expect(leaseText(lease)).toBe(`${JSON.stringify(lease)}\n`)
    expect(parseLease(leaseText(lease))).toEqual(lease)
    expect(parseLease('{"uuid": "GPU-1"}')).toBeUndefined()
    expect(parseLease('4242\n')).toBeUndefined()
    expect(parseLease('')).toBeUndefined()
  })

  it('is named after its GPU, and only such files are leases', () => {
    expect(leaseFileName(G1)).toBe(`${G1}.lease`)
    expect(uuidOfLeaseFile(`${G1}.lease`)).toBe(G1)
    expect(uuidOfLeaseFile('owner')).toBeUndefined()
    expect(uuidOfLeaseFile('gpus.lock')).toBeUndefined()
    expect(uuidOfLeaseFile(`.${G1}.lease.77.tmp`)).toBeUndefined()
  })

  it('belongs to a worker process by pid and start time: a new process with the old pid is not it', () => {
    expect(heldBy(lease, {pid: 4242, start: '918273'})).toBe(true)
    expect(heldBy(lease, {pid: 4242, start: '999999'})).toBe(false)
    expect(heldBy(lease, {pid: 4243, start: '918273'})).toBe(false)
  })

  it.each([
    [
      {
        GITHUB_JOB: 'train',
        GITHUB_REPOSITORY: 'org/repo',
        GITHUB_RUN_ID: '7',
        RUNNER_NAME: 'gpu-2'
      },
      'train (org/repo run 7, runner gpu-2)'
    ],
    [
      {
        GITHUB_JOB: 'train',
        GITHUB_REPOSITORY: 'org/repo',
        GITHUB_RUN_ID: '7',
        GITHUB_RUN_ATTEMPT: '2'
      },
      'train (org/repo run 7 attempt 2)'
    ],
    [{}, 'unnamed']
  ])('names the job from the runner variables: %j', (env, text) => {
    expect(jobDescription(env)).toBe(text)
  })
})

describe('/proc/<pid>/stat', () => {
  // Fields as the kernel prints them; the name may hold spaces and parentheses.
  const stat = (name: string, state: string, start: string) =>
    `812 (${name}) ${state} 811 812 812 0 -1 4194560 1234 0 0 0 10 5 0 0 20 0 12 0 ${start} 123456 789 18446744073709551615`

  it('gives the name, parent and start time, counting fields from the last parenthesis', () => {
    expect(parseProcStat(812, stat('Runner.Worker', 'S', '918273'))).toEqual({
      pid: 812,
      start: '918273',
      name: 'Runner.Worker',
      ppid: 811
    })
    expect(parseProcStat(812, stat('a) b (c', 'R', '5'))?.name).toBe('a) b (c')
  })

  it('says nothing of a zombie (it has exited) or of text that is not a stat line', () => {
    expect(parseProcStat(812, stat('node', 'Z', '918273'))).toBeUndefined()
    expect(parseProcStat(812, 'garbage')).toBeUndefined()
  })
})

const JOB: JobIdentity = {pid: 100, start: '5000', process: 'Runner.Worker', job: 'me'}

function view(uuid: string, who: {pid: number; start: string; job: string}, alive: boolean) {
  const lease: Lease = {uuid, index: DEVICES.findIndex(d => d.uuid === uuid), since: '', ...who}
  return [uuid, {lease, text: leaseText(lease), alive}] as [string, LeaseView]
}
const other = (job: string, pid: number) => ({pid, start: '1', job})
const mine = {pid: JOB.pid, start: JOB.start, job: JOB.job}

function facts(leases: [string, LeaseView][] = [], devices: GpuDevice[] = DEVICES): GpuFacts {
  return {devices, leases: new Map(leases), job: JOB}
}
const ask = (gpus: GpuInputs['gpus']): GpuInputs => ({gpus, gpuWait: 900})
const picked = (plan: ReturnType<typeof planGpus>) =>
  plan.picks.map(p => `${p.device.index}:${p.how}`)

describe('planGpus', () => {
  it('plans nothing without gpus', () => {
    const plan = planGpus(facts(), ask({kind: 'none'}))
    expect(plan).toMatchObject({wanted: false, steps: [], picks: []})
  })

  it('takes the idlest free GPUs: the fewest processes, then the least memory, then the lowest index', () => {
    const plan = planGpus(facts(), ask({kind: 'count', count: 3}))
    expect(picked(plan)).toEqual(['0:leased', '2:leased', '3:leased'])
    expect(plan.steps.map(s => s.description)).toEqual([
      `lease GPU 0 (${G0}, NVIDIA H100 80GB HBM3: idle)`,
      `lease GPU 2 (${G2}, NVIDIA H100 80GB HBM3: 1 process, 1024 MiB in use)`,
      `lease GPU 3 (${G3}, NVIDIA H100 80GB HBM3: idle)`
    ])
  })

  it('passes over GPUs live jobs hold, and says so', () => {
    const plan = planGpus(facts([view(G0, other('a', 7), true)]), ask({kind: 'count', count: 2}))
    expect(picked(plan)).toEqual(['2:leased', '3:leased'])
    expect(plan.found).toBe(
      '4 GPUs (busy: 1: 2 processes, 40211 MiB in use; 2: 1 process, 1024 MiB in use); leased to other jobs: 0'
    )
  })

  it('takes over a lease whose worker has ended, naming the job that held it', () => {
    const plan = planGpus(
      facts([view(G0, other('a', 7), false), view(G3, other('b', 8), true)]),
      ask({kind: 'count', count: 1})
    )
    expect(picked(plan)).toEqual(['0:taken over'])
    expect(plan.steps[0].description).toBe(
      `take over GPU 0 (${G0}, NVIDIA H100 80GB HBM3: idle) from job a, worker pid 7: that worker process has ended`
    )
  })

  it("counts the job's own leases first and changes nothing when they suffice", () => {
    const plan = planGpus(facts([view(G1, mine, true)]), ask({kind: 'count', count: 1}))
    expect(picked(plan)).toEqual(['1:reused'])
    expect(plan.steps).toEqual([])
    expect(plan.found).toContain("already this job's: 1")
    const more = planGpus(facts([view(G1, mine, true)]), ask({kind: 'count', count: 2}))
    expect(picked(more)).toEqual(['0:leased', '1:reused'])
  })

  it('takes none while too few are free: a request is met whole, and the wait names the holders', () => {
    const plan = planGpus(
      facts([
        view(G0, other('a', 7), true),
        view(G3, other('b', 8), true),
        view(G2, other('b', 8), true)
      ]),
      ask({kind: 'count', count: 2})
    )
    expect(plan.picks).toEqual([])
    expect(plan.short).toBe(1)
    expect(plan.held.map(h => h.device.index)).toEqual([0, 2, 3])
    expect(plan.steps.map(s => s.description)).toEqual([
      'wait up to 900 s for 2 GPUs (1 free now; GPU 0 held by job a, worker pid 7; GPU 2 held by job b, worker pid 8; GPU 3 held by job b, worker pid 8)'
    ])
  })

  it('leases all, or the GPUs a list names, by UUID in any case or by index', () => {
    expect(picked(planGpus(facts(), ask({kind: 'all'})))).toHaveLength(4)
    const list = planGpus(
      facts(),
      ask({kind: 'list', gpus: [{uuid: G3.toUpperCase()}, {index: 1}]})
    )
    expect(picked(list)).toEqual(['1:leased', '3:leased'])
    const busy = planGpus(
      facts([view(G1, other('a', 7), true)]),
      ask({kind: 'list', gpus: [{index: 1}]})
    )
    expect(busy.short).toBe(1)
  })

  it.each([
    [
      {kind: 'count', count: 5},
      'gpus: 5 GPUs asked for, but this host has 4 (nvidia-smi lists 0, 1, 2, 3).'
    ],
    [
      {kind: 'list', gpus: [{index: 9}]},
      `gpus: index 9 is not a GPU of this host; nvidia-smi lists 0 (${G0}), 1 (${G1}), 2 (${G2}), 3 (${G3}).`
    ]
  ] as [GpuInputs['gpus'], string][])(
    'refuses at once what no wait can give: %j',
    (gpus, message) => {
      expect(() => planGpus(facts(), ask(gpus))).toThrow(new HostError(message))
    }
  )

  it('refuses gpus on a host where nvidia-smi lists no GPU', () => {
    expect(() => planGpus(facts([], []), ask({kind: 'count', count: 1}))).toThrow(
      'gpus is set, but nvidia-smi lists no GPU on this host.'
    )
  })
})

describe('reading the GPUs and the job (effects, on a recording runner)', () => {
  it("asks nvidia-smi's two queries, as the runner's user, bounded in time", async () => {
    const runner = new FakeRunner([
      [['nvidia-smi', QUERY_GPUS[0]], {stdout: sample('gpus-4.csv')}],
      [['nvidia-smi', QUERY_APPS[0]], {stdout: sample('apps-4.csv')}]
    ])
    expect(await queryGpus(runner)).toEqual(DEVICES)
    expect(runner.calls.map(c => [c.argv, c.options])).toEqual([
      [['nvidia-smi', ...QUERY_GPUS], {allowFailure: true, timeoutSeconds: 30}],
      [['nvidia-smi', ...QUERY_APPS], {allowFailure: true, timeoutSeconds: 30}]
    ])
  })

  it('fails with what nvidia-smi said when it fails', async () => {
    const runner = new FakeRunner([
      [
        ['nvidia-smi'],
        {
          exitCode: 9,
          stdout:
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running."
        }
      ]
    ])
    await expect(queryGpus(runner)).rejects.toThrow(
      "gpus is set, but nvidia-smi failed (exit 9): NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    )
  })

  it('queries each GPU alone when one lost GPU makes the query of all abort, and leases from the rest', async () => {
    // The line nvidia-smi prints for a GPU that fell off the bus (cited in the fixture's header).
    const lost = readFileSync('__fixtures__/gpu-health/smi-device-handle-unknown-error.txt', 'utf8')
      .split('\n')
      .filter(l => !l.startsWith('#'))
      .join('\n')
    const lines = sample('gpus-4.csv').trim().split('\n')
    const apps = sample('apps-4.csv').trim().split('\n')
    const only = (i: number) => ['-i', String(i)]
    const answers: [string[], {exitCode?: number; stdout: string}][] = []
    for (const i of [0, 2, 3]) {
      const ofGpu = apps.filter(a => a.startsWith(DEVICES[i].uuid)).join('\n')
      answers.push([['nvidia-smi', ...QUERY_GPUS, ...only(i)], {stdout: `${lines[i]}\n`}])
      answers.push([['nvidia-smi', ...QUERY_APPS, ...only(i)], {stdout: ofGpu}])
    }
    answers.push([['nvidia-smi'], {exitCode: 255, stdout: lost}])
    const runner = new FakeRunner(answers)
    const buses = ['0000:01:00.0', '0000:0b:00.0', '0000:0c:00.0', '0000:0d:00.0']
    expect(await queryGpus(runner, () => Promise.resolve(buses))).toEqual(
      DEVICES.filter(d => d.index !== 1)
    )
    expect(runner.calls.filter(c => c.argv.includes('-i'))).toHaveLength(8)
  })

  it('does not ask each GPU alone for a driver/library mismatch, which every query shares', async () => {
    const mismatch =
      'Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 570.86'
    const runner = new FakeRunner([[['nvidia-smi'], {exitCode: 18, stdout: mismatch}]])
    let asked = false
    const buses = () => {
      asked = true
      return Promise.resolve(['0000:01:00.0', '0000:02:00.0'])
    }
    await expect(queryGpus(runner, buses)).rejects.toThrow(
      'gpus is set, but nvidia-smi failed (exit 18): Failed to initialize NVML: Driver/library version mismatch'
    )
    expect(asked).toBe(false)
    expect(runner.calls).toHaveLength(2)
  })

  it("names the job after the action's parent process, with its start time", () => {
    const job = jobIdentity({GITHUB_JOB: 'unit'})
    expect(job.pid).toBe(process.ppid)
    expect(job.start).toBe(processIdentity(process.ppid)?.start)
    expect(job.job).toBe('unit')
  })
})

describe('cdi-devices of the leased GPUs', () => {
  const EXPORTED = [
    'NVIDIA_VISIBLE_DEVICES',
    'CUDA_VISIBLE_DEVICES',
    'CDI_DEVICES',
    'DOCKER_GPU_OPTIONS'
  ]
  it.each([
    [
      'names every GPU the spec declares',
      [G0, G1, 'all'],
      [`nvidia.com/gpu=${G0}`, `nvidia.com/gpu=${G1}`],
      0
    ],
    [
      'leaves out a GPU the spec does not declare, in one warning',
      [G0, 'all'],
      [`nvidia.com/gpu=${G0}`],
      1
    ],
    ['names none from a spec with only all, in one warning', ['all'], [], 1]
  ])('%s', (_name, declared, names, warned) => {
    const saved = EXPORTED.map(k => process.env[k])
    const warnings: string[] = []
    const ctx = {outputs: {}, warn: (m: string) => warnings.push(m)} as unknown as Parameters<
      typeof publishLeases
    >[0]
    try {
      publishLeases(
        ctx,
        DEVICES.slice(0, 2).map(device => ({device, how: 'leased' as const})),
        new Set(declared)
      )
    } finally {
      EXPORTED.forEach((k, i) =>
        saved[i] === undefined ? delete process.env[k] : (process.env[k] = saved[i])
      )
    }
    expect(ctx.outputs.cdiDevices).toEqual(names)
    // One warning, naming the GPU left out (index and UUID).
    expect(warnings.map(w => w.includes(`1 (${G1})`))).toEqual(Array(warned).fill(true))
  })
})
