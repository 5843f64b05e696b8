/**
 * The runner's job hooks (runner-hooks), in a disposable bookworm host with systemd. A STAND-IN
 * runner folder (/opt/runner: .runner, .env, bin/Runner.Worker) whose stand-in worker runs the
 * hooks its .env names as the runner does (bash, the runner's user, a GITHUB_ENV of their own);
 * a stand-in nvidia-smi answers for two GPUs, and a stand-in nvidia-container-runtime-hook lets
 * Docker accept `--gpus`.
 */
import {createHash} from 'node:crypto'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {hookFilesOf} from '../../src/phases/hooks/plan.js'
import {LOCK_DIR} from '../../src/system/lock.js'
import {Box, IN_BOX, RUNNER_USER} from './bed/box.js'
import {BOOT_TIMEOUT} from './bed/prepare.js'
import {parseOutputFile, waitFor} from './harness.js'
import {RunnerJob} from './runner-job.js'

const RUNNER = '/opt/runner'
const WORKER = `${RUNNER}/bin/Runner.Worker`
// This runner's own hook folder (another runner's install or remove never touches it).
const HOOK_FILES = hookFilesOf(RUNNER)
const DOT_RUNNER = '{"agentid": 7, "agentname": "gpu-host-1", "poolid": 1}\n'
// As actions/runner labels its containers: SHA-256 of its root folder's path, lower-cased.
const LABEL = createHash('sha256').update(RUNNER.toLowerCase(), 'utf8').digest('hex').slice(0, 6)
const uuid = (n: number): string => {
  const d = String(n)
  return `GPU-${d.repeat(8)}-${d.repeat(4)}-4${d.repeat(3)}-8${d.repeat(3)}-${d.repeat(12)}`
}
const base = {'docker-source': 'distro', 'gpu-runtime': 'none', 'start-registry': 'false'}
let box: Box

beforeAll(() => {
  box = Box.start({suite: 'bookworm', state: 'engine', images: true})
  box.sh(
    `install -m 0755 ${IN_BOX.scripts}/nvidia-smi-standin.sh /usr/local/bin/nvidia-smi && ` +
      `install -D -m 0755 ${IN_BOX.scripts}/runner-worker.sh ${WORKER}`
  )
  box.write('/usr/local/bin/nvidia-container-runtime-hook', '#!/bin/sh\ncat >/dev/null\nexit 0\n')
  box.sh('chmod 0755 /usr/local/bin/nvidia-container-runtime-hook && systemctl restart docker')
  box.write(`${RUNNER}/.runner`, DOT_RUNNER)
  box.write(`${RUNNER}/.env`, 'LANG=C.UTF-8\n')
  box.sh(`chown -R ${RUNNER_USER}: ${RUNNER} && mkdir -m 1777 /tmp/jobs`)
  box.write(
    '/etc/nvidia-smi-standin/gpus.csv',
    [0, 1].map(i => `${i}, ${uuid(i)}, NVIDIA H100 80GB HBM3, 0, 81559`).join('\n') + '\n'
  )
}, BOOT_TIMEOUT)
afterAll(async () => {
  await RunnerJob.killRunning()
  box?.remove()
})

const job = (name: string, user?: string) =>
  new RunnerJob(() => box, name, {user, worker: WORKER, inputs: base})

describe('runner-hooks', () => {
  it('install: root-owned scripts, the .env lines, and the admin is told to restart the runner', async () => {
    const admin = job('install', RUNNER_USER).start({'runner-hooks': 'install', gpus: '1'})
    expect((await admin.main()).rc).toBe('0')
    // The step's output streams from the box: main.rc may land before its last lines.
    const warning = `::warning::runner-hooks: install: ${RUNNER}/.env changed`
    await waitFor(() => admin.output().includes(warning), 30_000, 'the install warning')
    expect(admin.output()).toContain(warning)
    expect(box.read(`${RUNNER}/.env`)).toBe(
      `LANG=C.UTF-8\nACTIONS_RUNNER_HOOK_JOB_STARTED=${HOOK_FILES.started}\nACTIONS_RUNNER_HOOK_JOB_COMPLETED=${HOOK_FILES.completed}\n`
    )
    expect(box.sh(`stat -c '%U %a' ${RUNNER}/.env`).trim()).toBe(`${RUNNER_USER} 644`)
    for (const f of [HOOK_FILES.started, HOOK_FILES.completed]) {
      expect(box.sh(`stat -c '%U %a' ${f}`).trim()).toBe('root 755')
    }
    expect(box.sh(`stat -c '%U %a' ${HOOK_FILES.bundle} $(dirname ${HOOK_FILES.bundle})`)).toBe(
      'root 644\nroot 755\n'
    )
    // The runner's user cannot change what the hooks run.
    expect(
      box.sh(`runuser -u ${RUNNER_USER} -- test -w ${HOOK_FILES.started} && echo yes || echo no`)
    ).toBe('no\n')
    expect((await admin.end('post')).rc).toBe(0)
  }, 240_000)

  it("leases before the job's containers; the lease reaches its steps and its container; the completed hook tears down and releases", async () => {
    // A job after the runner restarted: its worker read the hooks from .env.
    const j = job('container-job', RUNNER_USER).start()
    expect((await j.main()).rc).toBe('0')
    expect(box.read(`${j.dir}/started.rc`)).toBe('0\n')
    const leased = parseOutputFile(box.read(`${j.dir}/started.env`) ?? '').NVIDIA_VISIBLE_DEVICES
    expect([uuid(0), uuid(1)]).toContain(leased)
    const lease = JSON.parse(box.read(`${LOCK_DIR}/${leased}.lease`) ?? '{}') as {pid: number}
    expect(lease.pid).toBe(j.workerPid())
    // As the runner does after the hook: the job container (with its label), then a step in it
    // with the job's environment (docker exec -e).
    box.write(
      `${j.dir}/step`,
      [
        `docker run -d --name job-container --label ${LABEL} dgs-e2e/busybox:latest /bin/busybox sleep 1000`,
        `docker exec -e NVIDIA_VISIBLE_DEVICES="$NVIDIA_VISIBLE_DEVICES" job-container /bin/busybox env > ${j.dir}/seen`,
        `mv ${j.dir}/seen ${j.dir}/in-container`
      ].join('\n')
    )
    await waitFor(() => box.exists(`${j.dir}/in-container`), 60_000, 'the step in the container')
    expect(box.read(`${j.dir}/in-container`)).toContain(`\nNVIDIA_VISIBLE_DEVICES=${leased}\n`)
    expect((await j.end('post')).rc).toBe(0)
    expect(box.read(`${j.dir}/completed.rc`)).toBe('0\n')
    expect(box.read(`${j.dir}/completed.log`)).toContain(
      'Teardown: Containers: removed 1 (job-container)'
    )
    expect(box.sh('docker ps -a --format {{.Names}}')).not.toContain('job-container')
    expect(box.exists(`${LOCK_DIR}/${leased}.lease`)).toBe(false)
  }, 240_000)

  it('remove: the .env lines and the files go; the rest of .env stays', async () => {
    const admin = job('remove', RUNNER_USER).start({'runner-hooks': 'remove'})
    expect((await admin.main()).rc).toBe('0')
    expect(box.read(`${RUNNER}/.env`)).toBe('LANG=C.UTF-8\n')
    expect(box.exists(HOOK_FILES.started) || box.exists(HOOK_FILES.dir)).toBe(false)
    expect((await admin.end('post')).rc).toBe(0)
  }, 240_000)
})
