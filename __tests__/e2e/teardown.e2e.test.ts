/**
 * Teardown of what a job left, in a disposable bookworm host with systemd and Debian's engine. A
 * stand-in nvidia-smi answers for three GPUs (its compute processes are the live pids a test lists
 * in apps.csv, their memory the GPU's memory in use); a stand-in nvidia-container-runtime-hook lets
 * Docker accept `--gpus` (it starts the container with plain runc); each job is a stand-in
 * Runner.Worker that runs the action's main step, a later step, and its post step.
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {GRACE_S} from '../../src/phases/teardown/apply.js'
import {LOCK_DIR} from '../../src/system/lock.js'
import {Box, IN_BOX} from './bed/box.js'
import {BOOT_TIMEOUT} from './bed/prepare.js'
import {waitFor} from './harness.js'
import {RunnerJob, type TeardownOutput} from './runner-job.js'

const APPS = '/etc/nvidia-smi-standin/apps.csv'
const IMAGE = 'dgs-e2e/busybox:latest'
const REGISTRY = 'docker-gpu-setup-registry'
const uuid = (n: number): string => {
  const d = String(n)
  return `GPU-${d.repeat(8)}-${d.repeat(4)}-4${d.repeat(3)}-8${d.repeat(3)}-${d.repeat(12)}`
}
const GPUS = [0, 1, 2].map(i => `${i}, ${uuid(i)}, NVIDIA H100 80GB HBM3, 0, 81559`).join('\n')
const base = {
  'docker-source': 'distro',
  'gpu-runtime': 'none',
  'start-registry': 'false',
  gpus: '1',
  'gpu-wait': '180'
}
let box: Box

type Teardown = TeardownOutput

/** A job of this file, with its base inputs. */
class Job extends RunnerJob {
  constructor(name: string) {
    super(() => box, name, {inputs: base})
  }
}

/** Starts a detached container with these options; its main process runs on `gpu` (apps.csv). */
function container(name: string, options: string, gpu?: string, mib = 1500): void {
  box.sh(`docker run -d --name ${name} ${options} ${IMAGE} /bin/busybox sleep 1000 >/dev/null`)
  if (gpu) onGpu(gpu, Number(box.sh(`docker inspect -f '{{.State.Pid}}' ${name}`).trim()), mib)
}

/** Lists a pid as a compute process on the GPU (the stand-in drops it once it ends). */
function onGpu(gpu: string, pid: number, mib: number): void {
  box.sh(`echo '${gpu}, ${pid}, ${mib}' >> ${APPS}`)
}

/** A process outside any container that ignores TERM (KILL ends it), left running on `gpu`. */
function stubborn(gpu: string): number {
  const pid = Number(
    box
      .sh(
        `setsid bash -c 'trap "" TERM; while :; do sleep 1; done' >/dev/null 2>&1 < /dev/null & echo $!`
      )
      .trim()
  )
  onGpu(gpu, pid, 700)
  return pid
}

const exists = (name: string): boolean =>
  box.sh(`docker inspect ${name} >/dev/null 2>&1 && echo yes || true`).trim() === 'yes'
const running = (name: string): boolean =>
  box.sh(`docker inspect -f '{{.State.Running}}' ${name} 2>/dev/null || true`).trim() === 'true'
const alive = (pid: number): boolean =>
  box.sh(`kill -0 ${pid} 2>/dev/null && echo yes || true`).trim() === 'yes'
const ids = (items: Teardown['removed']): string[] => items.map(i => `${i.kind} ${i.id}`)

beforeAll(() => {
  box = Box.start({suite: 'bookworm', state: 'engine', images: true})
  box.sh(
    `install -m 0755 ${IN_BOX.scripts}/nvidia-smi-standin.sh /usr/local/bin/nvidia-smi && ` +
      `install -m 0755 ${IN_BOX.scripts}/runner-worker.sh /usr/local/bin/Runner.Worker`
  )
  // STAND-IN hook: Docker registers its `--gpus` driver when this program is on its PATH; runc
  // runs it before each such container starts, and it lets the container start as it is.
  box.write('/usr/local/bin/nvidia-container-runtime-hook', '#!/bin/sh\ncat >/dev/null\nexit 0\n')
  box.sh('chmod 0755 /usr/local/bin/nvidia-container-runtime-hook && systemctl restart docker')
  box.sh('mkdir -m 1777 /tmp/jobs')
  box.write('/etc/nvidia-smi-standin/gpus.csv', `${GPUS}\n`)
  box.write(APPS, '')
}, BOOT_TIMEOUT)
afterAll(async () => {
  await RunnerJob.killRunning()
  box?.remove()
})

describe('a job that leaves containers, a network and processes on its GPU', () => {
  const a = new Job('train-a')
  const other = new Job('other-runner')
  const c = new Job('train-c')
  let stubbornPid = 0

  it('is torn down by its post step, before the GPU is handed on; what is not its own stays', async () => {
    a.start({'start-registry': 'true'})
    expect((await a.main()).rc).toBe('0')
    other.start()
    expect((await other.main()).rc).toBe('0')
    const mine = a.gpu()
    const theirs = other.gpu()
    expect([mine, theirs].sort()).toEqual([uuid(0), uuid(1)])
    // What the job left: a container on its GPU on a network of its own, a process that ignores
    // TERM. Another runner's job has a container on its GPU; a third can use every GPU.
    box.sh('docker network create a-net >/dev/null')
    container('a-left', `--network a-net --gpus device=${mine}`, mine)
    stubbornPid = stubborn(mine)
    container('other-own', `--label 0a1b2c --gpus device=${theirs}`, theirs)
    container('every-gpu', '--gpus all')
    expect(running('a-left') && running('other-own') && running(REGISTRY)).toBe(true)

    // A job waiting for a GPU gets this one only once the post step has removed what was left.
    c.start({gpus: mine})
    await waitFor(() => c.output().includes('Waiting up to'), 60_000, 'train-c to wait')
    const posted = Date.now()
    const post = await a.end('post')
    expect(post.rc).toBe(0)
    expect(ids(post.teardown.removed).sort()).toEqual(
      ['container a-left', 'network a-net', `process ${stubbornPid} (bash)`].sort()
    )
    expect(post.teardown.kept).toEqual(
      expect.arrayContaining([
        expect.objectContaining({kind: 'container', id: 'every-gpu'}),
        expect.objectContaining({kind: 'container', id: REGISTRY}),
        expect.objectContaining({kind: 'container', id: 'other-own'})
      ])
    )
    expect(post.out).toContain('Teardown: Containers: removed 1 (a-left); kept ')
    expect(post.out).toContain('GPU processes: removed 1')
    expect(post.out).toContain('Networks: removed 1 (a-net)')
    expect(exists('a-left') || alive(stubbornPid)).toBe(false)
    expect(box.sh('docker network ls --format {{.Name}}')).not.toContain('a-net')
    // The process ignored TERM: the lease went only after its grace and KILL.
    expect((await c.main()).rc).toBe('0')
    expect(c.gpu()).toBe(mine)
    expect(c.leasedAt() - posted).toBeGreaterThanOrEqual(GRACE_S * 1000)
    // Never touched: another runner's container, one that can use every GPU, the registry.
    expect(running('other-own') && running('every-gpu') && running(REGISTRY)).toBe(true)
  }, 300_000)

  it('is torn down when the job is cancelled: its step is stopped, then its post step runs', async () => {
    const gpu = c.gpu()
    box.write(
      `${c.dir}/step`,
      [
        `docker run -d --name c-left --gpus device=${gpu} ${IMAGE} /bin/busybox sleep 1000`,
        `echo "${gpu}, $(docker inspect -f '{{.State.Pid}}' c-left), 900" >> ${APPS}`,
        // A training process in the background of the step: the cancel does not reach it.
        `sleep 1000 &`,
        `echo "${gpu}, $!, 800" >> ${APPS}`,
        `echo $! > ${c.dir}/trainer.pid`,
        'wait'
      ].join('\n')
    )
    await waitFor(() => box.exists(`${c.dir}/trainer.pid`), 60_000, 'the step to start')
    const trainer = Number(box.read(`${c.dir}/trainer.pid`))
    const ended = await c.end('cancel')
    expect(ended.rc).toBe(0)
    expect(ids(ended.teardown.removed).sort()).toEqual(
      ['container c-left', `process ${trainer} (sleep)`].sort()
    )
    expect(exists('c-left') || alive(trainer)).toBe(false)
    expect(ended.out).toContain(`Released GPU ${gpu === uuid(0) ? 0 : 1} (${gpu}).`)
    expect(running('other-own') && running(REGISTRY)).toBe(true)
  }, 120_000)

  it("is torn down by the next job before it takes over a dead job's GPU", async () => {
    const b = new Job('train-b').start({gpus: '2,'})
    expect((await b.main()).rc).toBe('0')
    container('b-left', `--gpus device=${uuid(2)}`, uuid(2))
    const pid = stubborn(uuid(2))
    await b.kill()
    const killed = Date.now()
    const next = new Job('train-d').start({gpus: '2,'})
    const main = await next.main()
    expect(main.rc).toBe('0')
    expect(next.output()).toContain(
      `Tearing down what job train-b (org/repo run 2004, runner runner-train-b) (worker pid`
    )
    const teardown = JSON.parse(main.outputs.teardown) as Teardown
    expect(ids(teardown.removed).sort()).toEqual(
      ['container b-left', `process ${pid} (bash)`].sort()
    )
    expect(exists('b-left') || alive(pid)).toBe(false)
    expect(next.leasedAt() - killed).toBeGreaterThanOrEqual(GRACE_S * 1000)
    expect(next.output()).toContain(`Taking over GPU 2 (${uuid(2)}) from job train-b`)
    expect(running('other-own') && running('every-gpu') && running(REGISTRY)).toBe(true)
    expect((await next.end('post')).rc).toBe(0)
  }, 180_000)

  it('keeps the lease of a GPU whose memory is not freed, and the next job waits until it is', async () => {
    const f = new Job('train-f').start({gpus: '2,'})
    expect((await f.main()).rc).toBe('0')
    // Memory no process holds (a context the driver has not freed): the GPU is not idle.
    box.write('/etc/nvidia-smi-standin/held.csv', `${uuid(2)}, 5000\n`)
    const post = await f.end('post')
    expect(post.rc).toBe(0)
    expect(post.out).toContain(
      `::warning::GPU 2 (${uuid(2)}) stays leased: 5000 MiB of its memory is still in use.`
    )
    expect(box.exists(`${LOCK_DIR}/${uuid(2)}.lease`)).toBe(true)
    // The worker has ended: the next job finds the lease ended, but waits for the GPU to be idle.
    const g = new Job('train-g').start({gpus: '2,'})
    await waitFor(
      () => g.output().includes(`GPU 2 (${uuid(2)}) is not handed on yet: 5000 MiB`),
      120_000,
      'train-g to find GPU 2 not idle'
    )
    expect(box.exists(`${g.dir}/main.rc`)).toBe(false)
    box.sh('rm /etc/nvidia-smi-standin/held.csv')
    const freed = Date.now()
    expect((await g.main()).rc).toBe('0')
    expect(g.gpu()).toBe(uuid(2))
    expect(g.leasedAt()).toBeGreaterThanOrEqual(freed - 1000)
    expect((await g.end('post')).rc).toBe(0)
  }, 300_000)
})
