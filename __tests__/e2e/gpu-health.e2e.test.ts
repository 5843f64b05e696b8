/**
 * The GPU health gate in disposable bookworm hosts with systemd. A stand-in nvidia-smi answers for
 * four GPUs: `-q -x` prints a real A100 capture (__fixtures__/gpu-health) adapted per GPU, one
 * with a volatile double-bit ECC count; the kernel's Xid 79 line of a real report is written to
 * this machine's /dev/kmsg, which every box's dmesg shows, on a PCI address unique to this run.
 * Each job is a stand-in Runner.Worker, as in the lease tests.
 */
import {randomBytes} from 'node:crypto'
import {readFileSync, writeFileSync} from 'node:fs'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {Box, IN_BOX} from './bed/box.js'
import {BOOT_TIMEOUT} from './bed/prepare.js'
import {errorLine, parseOutputFile, waitFor, type BackgroundRun} from './harness.js'

const fixture = (name: string): string => readFileSync(`__fixtures__/gpu-health/${name}`, 'utf8')
const uuid = (n: number): string => {
  const d = String(n)
  return `GPU-${d.repeat(8)}-${d.repeat(4)}-4${d.repeat(3)}-8${d.repeat(3)}-${d.repeat(12)}`
}
// A PCI domain of this run's own: Xid lines stay in the kernel log until the machine reboots.
const DOMAIN = randomBytes(2).toString('hex')
const bus = (n: number): string => `${DOMAIN}:${(0x3b + n).toString(16)}:00`

/** The real A100 capture's <gpu> element, renamed to GPU n (UUID, PCI address). */
function gpuXml(n: number): string {
  const a100 = fixture('smi-x-a100-510.xml')
  const gpu = /<gpu id=[\s\S]*<\/gpu>/.exec(a100)?.[0] ?? ''
  return gpu
    .replace('GPU-27b94a00-ed54-5c24-b1fd-1054085de32a', uuid(n))
    .replaceAll('00000000:00:04.0', `0000${bus(n)}.0`)
}

/** nvidia-smi -q -x of the four GPUs; GPU 2 with 2 volatile double-bit (DRAM) ECC errors. */
function queryXml(): string {
  const gpus = [0, 1, 2, 3].map(n => {
    const xml = gpuXml(n)
    if (n !== 2) return xml
    const dbe = xml.replace(
      /(<volatile>[\s\S]*?<dram_uncorrectable>)N\/A(<\/dram_uncorrectable>)/,
      '$12$2'
    )
    expect(dbe).not.toBe(xml)
    return dbe
  })
  return `<?xml version="1.0" ?>\n<nvidia_smi_log>\n<driver_version>510.47.03</driver_version>\n${gpus.join('\n')}\n</nvidia_smi_log>\n`
}

const GPUS = [0, 1, 2, 3].map(i => `${i}, ${uuid(i)}, NVIDIA A100-SXM4-40GB, 0, 40960`).join('\n')
// The Xid line of akash-network/support issue 209, on GPU 1's PCI address.
const XID_79 = `NVRM: Xid (PCI:${bus(1)}): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.`
const base = {'docker-source': 'distro', 'gpu-runtime': 'none', 'start-registry': 'false'}
const started: {run?: BackgroundRun; dir: string; box: Box}[] = []
let runs = 0

/** One job on `box`: a stand-in Runner.Worker that runs the action's main step, then its post step. */
function job(box: Box, name: string, inputs: Record<string, string>) {
  const dir = `/tmp/jobs/${name}`
  const run = box.start(
    {...base, ...inputs},
    {
      wrap: ['/usr/local/bin/Runner.Worker', dir],
      env: {GITHUB_JOB: name, GITHUB_REPOSITORY: 'org/repo', GITHUB_RUN_ID: String(2000 + ++runs)}
    }
  )
  const j = {run, dir, box}
  started.push(j)
  return {
    async main() {
      await waitFor(() => box.exists(`${dir}/main.rc`), 120_000, `the main step of ${name}`)
      const rc = Number(box.read(`${dir}/main.rc`))
      // The worker wrote main.rc; the step's last lines may still be on their way through docker
      // exec: its error, or the end of the last phase's group.
      const ended = (out: string): boolean =>
        rc !== 0 ? out.includes('::error::') : /::group::Push images[\s\S]*::endgroup::/.test(out)
      await waitFor(() => ended(run.output()), 30_000, `the end of ${name}'s main step output`)
      const out = run.output()
      return {
        rc,
        outputs: parseOutputFile(box.read(`${dir}/main.output`) ?? ''),
        out,
        error: (out.split('\n').find(l => l.startsWith('::error::')) ?? '').replace(
          /^::error::/,
          ''
        )
      }
    },
    async post() {
      box.sh(`touch ${dir}/post`)
      await run.done
    },
    async kill() {
      box.sh(`kill -9 "$(cat ${dir}/pid)"`)
      await run.done
    }
  }
}

function standIn(box: Box): void {
  box.sh(
    `install -m 0755 ${IN_BOX.scripts}/nvidia-smi-standin.sh /usr/local/bin/nvidia-smi && ` +
      `install -m 0755 ${IN_BOX.scripts}/runner-worker.sh /usr/local/bin/Runner.Worker && ` +
      'mkdir -m 1777 /tmp/jobs'
  )
  box.write('/etc/nvidia-smi-standin/gpus.csv', `${GPUS}\n`)
  box.write('/etc/nvidia-smi-standin/apps.csv', '')
}

/** Ends the jobs a failed test left waiting on `box`, then removes it. */
async function removeBox(box: Box | undefined): Promise<void> {
  for (const j of started.filter(j => j.box === box && j.run?.running())) {
    j.box.sh(`kill -9 "$(cat ${j.dir}/pid)" 2>/dev/null || true`, {allowFail: true})
    await j.run?.done.catch(() => undefined)
  }
  box?.remove()
}

describe('a host with a GPU that fell off the bus and one with double-bit ECC errors', () => {
  let box: Box
  beforeAll(() => {
    box = Box.start({suite: 'bookworm', state: 'engine'})
    standIn(box)
    box.write('/etc/nvidia-smi-standin/query.xml', queryXml())
    // As the kernel logs it: root on this machine writes to the shared kernel log.
    writeFileSync('/dev/kmsg', `${XID_79}\n`)
  }, BOOT_TIMEOUT)
  afterAll(() => removeBox(box), 60_000)

  let holder: ReturnType<typeof job>

  it('leases only healthy GPUs, and says why the others are kept out', async () => {
    expect(box.sh('dmesg')).toContain(XID_79)
    holder = job(box, 'train-a', {gpus: '2'})
    const r = await holder.main()
    expect(r.rc).toBe(0)
    expect(r.outputs['gpu-indexes']).toBe('0,3')
    const health = JSON.parse(r.outputs['gpu-health']) as Record<
      string,
      {healthy: boolean; problems: string[]}
    >
    expect(health[uuid(0)]).toEqual({healthy: true, problems: []})
    expect(health[uuid(3)]).toEqual({healthy: true, problems: []})
    expect(health[uuid(1)]).toEqual({
      healthy: false,
      problems: [`Xid 79 (GPU has fallen off the bus): "${XID_79}"`]
    })
    expect(health[uuid(2)]).toEqual({
      healthy: false,
      problems: ['2 uncorrectable ECC errors (volatile dram_uncorrectable)']
    })
    expect(r.out).toContain(
      `::warning::gpu-health: GPU 1 (${uuid(1)}, PCI ${bus(1)}): Xid 79 (GPU has fallen off the bus)`
    )
    expect(r.out).toContain('reboot the host; kept from this job.')
    expect(r.out).toContain(
      `::warning::gpu-health: GPU 2 (${uuid(2)}, PCI ${bus(2)}): 2 uncorrectable ECC errors (volatile dram_uncorrectable); reset it (nvidia-smi -r -i 2`
    )
  }, 180_000)

  it('fails at once, naming the unhealthy GPUs, when a job needs more than the healthy ones', async () => {
    const wide = job(box, 'train-c', {gpus: '3'})
    const w = await wide.main()
    expect(w.rc).toBe(1)
    expect(w.error).toContain(
      `gpus: 3 GPUs asked for, but 2 of 4 are healthy; the health gate keeps GPU 1 (${uuid(1)}): Xid 79`
    )
    expect(w.error).toContain(`GPU 2 (${uuid(2)}): 2 uncorrectable ECC errors`)
    await wide.post()
  }, 300_000)

  it('keeps a GPU with a leftover process of an ended job out until the process is gone (teardown off)', async () => {
    // train-a dies; a compute process it started on GPU 0 lives on.
    const pid = box.sh('setsid sleep 600 >/dev/null 2>&1 < /dev/null & echo $!').trim()
    box.write('/etc/nvidia-smi-standin/apps.csv', `${uuid(0)}, ${pid}, 4000\n`)
    await holder.kill()
    // With teardown on (the default with gpus) the takeover would end it: teardown.e2e shows that.
    const next = job(box, 'train-d', {gpus: '2', teardown: 'false'})
    const r = await next.main()
    expect(r.rc).toBe(1)
    expect(r.error).toContain(
      `GPU 0 (${uuid(0)}): compute process ${pid} (4000 MiB) of job train-a (org/repo run`
    )
    expect(r.error).toContain('which has ended, still runs')
    await next.post()
    box.sh(`kill ${pid}`)
    const after = job(box, 'train-e', {gpus: '2', teardown: 'false'})
    const a = await after.main()
    expect(a.rc).toBe(0)
    expect(a.outputs['gpu-indexes']).toBe('0,3')
    expect(a.out).toContain(`Taking over GPU 0 (${uuid(0)}) from job train-a`)
    await after.post()
  }, 300_000)
})

describe('a driver upgraded under the loaded module', () => {
  let box: Box
  beforeAll(() => {
    box = Box.start({suite: 'bookworm', state: 'engine'})
    standIn(box)
    box.write('/etc/nvidia-smi-standin/mismatch', '580.178\n')
    // The loaded module's version file, as zzzhouuu/truenas-nvidia-drivers issue 19 quotes it.
    box.sh('mount -t tmpfs tmpfs /proc/driver && mkdir /proc/driver/nvidia')
    box.write('/proc/driver/nvidia/version', fixture('proc-version-truenas.txt'))
  }, BOOT_TIMEOUT)
  afterAll(() => removeBox(box), 60_000)

  it('fails the step before anything else, naming both versions and "reboot needed"', () => {
    const r = box.run(base)
    expect(r.code).toBe(1)
    expect(errorLine(r)).toBe(
      "gpu-health: NVIDIA driver version mismatch: user-space library (NVML) 580.178 but loaded kernel module 580.173.02 (the driver's packages were upgraded under the running module): reboot needed; every GPU job fails until then. No GPU answers: drain this runner (take it offline) until the host is fixed."
    )
    // The gate is the first phase: nothing after it ran.
    expect(r.stdout).not.toContain('::group::GPU leases')
    expect(r.outputs['gpu-health']).toBe('{}')
  })

  it('says the same as a warning, and goes on, with gpu-health: warn', () => {
    const r = box.run({...base, 'gpu-health': 'warn'})
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('::warning::gpu-health: NVIDIA driver version mismatch')
  })
})
