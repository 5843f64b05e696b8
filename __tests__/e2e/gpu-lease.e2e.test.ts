/**
 * GPU leases between jobs on one host, in a disposable bookworm host with systemd. A stand-in
 * nvidia-smi answers for four GPUs; each job is a stand-in Runner.Worker, the process that lives
 * for the whole job and starts the action's main and post steps, as the runner's worker does.
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {Box, IN_BOX, RUNNER_USER} from './bed/box.js'
import {BOOT_TIMEOUT} from './bed/prepare.js'
import {expectSuccess, parseOutputFile, waitFor, type BackgroundRun} from './harness.js'

const LOCK = '/run/docker-gpu-setup'
const uuid = (n: number): string => {
  const d = String(n)
  return `GPU-${d.repeat(8)}-${d.repeat(4)}-4${d.repeat(3)}-8${d.repeat(3)}-${d.repeat(12)}`
}
// Idlest first: 0 (nothing), 3 (100 MiB), 2 (300 MiB), 1 (a process, 2000 MiB).
const GPUS = [
  [0, 0],
  [1, 2000],
  [2, 300],
  [3, 100]
]
  .map(([i, mem]) => `${i}, ${uuid(i)}, NVIDIA H100 80GB HBM3, ${mem}, 81559`)
  .join('\n')
const APPS = `${uuid(1)}, 4242, 2000`
const base = {
  'docker-source': 'distro',
  'gpu-runtime': 'none',
  'start-registry': 'false',
  gpus: '2',
  'gpu-wait': '120'
}
let box: Box
let runs = 0
const started: Job[] = []

/** One job: a stand-in Runner.Worker that runs the action's main step, then its post step. */
class Job {
  readonly dir: string
  run?: BackgroundRun
  /** `user`: the runner runs as this user (with passwordless sudo), not as root. */
  constructor(
    readonly name: string,
    readonly user?: string
  ) {
    this.dir = `/tmp/jobs/${name}`
  }

  start(inputs: Record<string, string> = {}): this {
    started.push(this)
    this.run = box.start(
      {...base, ...inputs},
      {
        user: this.user,
        wrap: ['/usr/local/bin/Runner.Worker', this.dir],
        env: {
          GITHUB_JOB: this.name,
          GITHUB_REPOSITORY: 'org/repo',
          GITHUB_RUN_ID: String(1000 + ++runs),
          RUNNER_NAME: `runner-${this.name}`
        }
      }
    )
    return this
  }

  mainEnded(): boolean {
    return box.exists(`${this.dir}/main.rc`)
  }

  output(): string {
    return this.run?.output() ?? ''
  }

  main(): {rc: number; outputs: Record<string, string>; exported: Record<string, string>} {
    return {
      rc: Number(box.read(`${this.dir}/main.rc`)),
      outputs: parseOutputFile(box.read(`${this.dir}/main.output`) ?? ''),
      exported: parseOutputFile(box.read(`${this.dir}/main.env`) ?? '')
    }
  }

  /** The post step; resolves when the worker (the job) ends. */
  async post(): Promise<number> {
    box.sh(`touch ${this.dir}/post`)
    await this.run?.done
    return Number(box.read(`${this.dir}/post.rc`))
  }

  /** The job dies: its worker is killed (the action's node processes have ended already). */
  async kill(): Promise<void> {
    box.sh(`kill -9 "$(cat ${this.dir}/pid)"`)
    await this.run?.done
  }

  workerPid(): number {
    return Number(box.read(`${this.dir}/pid`))
  }
}

function leases(): string[] {
  return box
    .sh(`ls ${LOCK} 2>/dev/null || true`)
    .split('\n')
    .filter(f => f.endsWith('.lease'))
}

beforeAll(() => {
  box = Box.start({suite: 'bookworm', state: 'engine'})
  box.sh(
    `install -m 0755 ${IN_BOX.scripts}/nvidia-smi-standin.sh /usr/local/bin/nvidia-smi && ` +
      `install -m 0755 ${IN_BOX.scripts}/runner-worker.sh /usr/local/bin/Runner.Worker`
  )
  box.sh('mkdir -m 1777 /tmp/jobs')
  box.write('/etc/nvidia-smi-standin/gpus.csv', `${GPUS}\n`)
  box.write('/etc/nvidia-smi-standin/apps.csv', `${APPS}\n`)
}, BOOT_TIMEOUT)
afterAll(async () => {
  // A job a failed test left waiting for its post step ends before its box goes.
  for (const j of started.filter(j => j.run?.running())) await j.kill().catch(() => undefined)
  box?.remove()
})

describe('three jobs asking for two of four GPUs each', () => {
  const jobs = [new Job('train-a'), new Job('train-b'), new Job('train-c')]
  let holders: Job[] = []
  let waiting: Job

  it('two get disjoint pairs, the idlest GPUs first; the third waits, saying who holds what', async () => {
    for (const j of jobs) j.start()
    await waitFor(
      () =>
        jobs.filter(j => j.mainEnded()).length === 2 &&
        jobs.some(j => j.output().includes('Waiting up to')),
      180_000,
      'two jobs leased and one waiting'
    )
    holders = jobs.filter(j => j.mainEnded())
    waiting = jobs.filter(j => !j.mainEnded())[0]
    const results = holders.map(j => j.main())
    for (const r of results) expect(r.rc).toBe(0)
    const pairs = results.map(r => r.outputs['gpu-indexes'])
    expect([...pairs].sort()).toEqual(['0,3', '1,2'])
    // The first to lease got the two idlest GPUs.
    const first = holders[pairs.indexOf('0,3')]
    const r = results[pairs.indexOf('0,3')]
    expect(r.outputs['gpu-uuids']).toBe(`${uuid(0)},${uuid(3)}`)
    expect(r.outputs['docker-gpus']).toBe(`"device=${uuid(0)},${uuid(3)}"`)
    expect(r.exported.NVIDIA_VISIBLE_DEVICES).toBe(`${uuid(0)},${uuid(3)}`)
    expect(r.exported.CUDA_VISIBLE_DEVICES).toBe(`${uuid(0)},${uuid(3)}`)
    expect(first.output()).toContain(
      `Leased GPU 0 (${uuid(0)}, NVIDIA H100 80GB HBM3) to ${first.name}`
    )
    // The waiting job names each holder: its job, run, runner and worker process.
    for (const h of holders) {
      expect(waiting.output()).toContain(`job ${h.name} (org/repo run `)
      expect(waiting.output()).toContain(`worker pid ${h.workerPid()}`)
    }
    expect(waiting.run?.running()).toBe(true)
    expect(leases().sort()).toEqual([0, 1, 2, 3].map(i => `${uuid(i)}.lease`))
    holders = [first, ...holders.filter(h => h !== first)]
  }, 240_000)

  it('gets a pair as soon as a post step releases one, and the release waits for no lock', async () => {
    // Another run holds the host lock: releasing and leasing must not wait for it.
    const holder = box.sh('setsid sleep 600 >/dev/null 2>&1 < /dev/null & echo $!').trim()
    box.sh(`echo ${holder} > ${LOCK}/owner`)
    try {
      // The post step (a node process started for it) ends within seconds even on a loaded host.
      const posted = Date.now()
      expect(await holders[0].post()).toBe(0)
      const released = Date.now()
      expect(released - posted).toBeLessThan(20_000)
      expect(holders[0].run && (await holders[0].run.done).stdout).toContain(
        `Released GPU 0 (${uuid(0)}).`
      )
      await waitFor(
        () => waiting.output().includes('Waiting for the host lock'),
        30_000,
        'the waiting job to lease, then wait for the host lock'
      )
      expect(waiting.output()).toContain(
        `Leased GPU 0 (${uuid(0)}, NVIDIA H100 80GB HBM3) to ${waiting.name} (org/repo run`
      )
      // The waiting job took the lease within a poll (half a second) of the release, give or
      // take a loaded host: the lease's own time says when.
      const lease = JSON.parse(box.read(`${LOCK}/${uuid(0)}.lease`) ?? '{}') as {since: string}
      expect(Date.parse(lease.since) - released).toBeLessThan(3000)
    } finally {
      box.sh(`rm -f ${LOCK}/owner; kill ${holder}`)
    }
    await waitFor(() => waiting.mainEnded(), 60_000, 'the waiting job to finish its main step')
    expect(waiting.main().rc).toBe(0)
    expect(waiting.main().outputs['gpu-indexes']).toBe('0,3')
  }, 120_000)

  it("takes over a killed job's lease, saying which job held it (a runner that is not root)", async () => {
    const dead = holders[1]
    const pid = dead.workerPid()
    await dead.kill()
    const next = new Job('train-d', RUNNER_USER).start()
    await waitFor(() => next.mainEnded(), 60_000, 'the next job')
    expect(next.main().rc).toBe(0)
    expect(next.main().outputs['gpu-indexes']).toBe('1,2')
    expect(next.output()).toContain(
      `Taking over GPU 1 (${uuid(1)}) from job ${dead.name} (org/repo run`
    )
    expect(next.output()).toContain(`worker pid ${pid}`)
    expect(next.output()).toContain('that worker process has ended')
    holders = [waiting, next]
  }, 120_000)

  it('a job that cannot get its GPUs in gpu-wait fails naming the holders, holding no lock meanwhile', async () => {
    const late = new Job('train-e').start({'gpu-wait': '6'})
    await waitFor(() => late.output().includes('Waiting up to'), 60_000, 'the late job to wait')
    // It holds neither the host lock nor the lease lock while it waits: another run goes through.
    expect(box.exists(`${LOCK}/owner`)).toBe(false)
    expect(box.exists(`${LOCK}/gpus.lock`)).toBe(false)
    const plain = box.run({
      'docker-source': 'distro',
      'gpu-runtime': 'none',
      'start-registry': 'false'
    })
    expectSuccess(plain)
    await waitFor(() => late.output().includes('::error::'), 60_000, 'the late job to give up')
    await waitFor(() => late.mainEnded(), 10_000, 'the late main step to end')
    expect(late.main().rc).toBe(1)
    const error =
      late
        .output()
        .split('\n')
        .find(l => l.startsWith('::error::')) ?? ''
    expect(error).toContain(
      'gpus: 2 GPUs wanted, 0 free after waiting 6 s (gpu-wait). Held by: GPU 0'
    )
    for (const h of holders) expect(error).toContain(`job ${h.name} (org/repo run`)
    expect(late.main().outputs['gpu-uuids']).toBe('')
    expect(await late.post()).toBe(0)
  }, 120_000)

  it("the post steps release exactly their leases; the lock folder stays, root's alone", async () => {
    for (const h of holders) expect(await h.post()).toBe(0)
    expect(leases()).toEqual([])
    expect(box.sh(`stat -c '%U %a %F' ${LOCK}`).trim()).toBe('root 755 directory')
  }, 60_000)
})
