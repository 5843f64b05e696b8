/** Takes the planned GPU leases (lease files in the lock folder) and publishes them: the outputs, the post step's state, and NVIDIA_VISIBLE_DEVICES and CUDA_VISIBLE_DEVICES exported directly. */
import * as path from 'node:path'
import * as core from '@actions/core'
import {cdiNames} from './cdi.js'
import {HostError} from '../../errors.js'
import {dockerGpuOptions, type GpuLeaseResult, type TeardownResult} from '../../outputs.js'
import type {SavedLease} from '../../state.js'
import {
  GPU_LEASE_LOCK,
  LOCK_DIR,
  acquireFileLock,
  createExclusive,
  takeOver
} from '../../system/lock.js'
import type {PhaseContext} from '../pipeline.js'
import {queryGpus, readLeases} from './detect.js'
import type {GpuSettings} from './inputs.js'
import {
  heldBy,
  holderText,
  leaseFileName,
  leaseText,
  parseLease,
  type JobIdentity
} from './lease.js'
import {planGpus, type GpuPick, type GpuPlan, type LeaseView} from './plan.js'

type Ctx = PhaseContext<GpuSettings>

/** How often a waiting run looks at the leases again (reading files only, no lock). */
const POLL_MS = 500
/** How long a GPU held by an ended job's leftovers waits before teardown looks at it again. */
const RETRY_BLOCKED_MS = 15_000

/** The path of a GPU's lease file. */
export function leasePath(uuid: string): string {
  return path.join(LOCK_DIR, leaseFileName(uuid))
}

function jobOf(plan: GpuPlan): JobIdentity {
  if (!plan.facts.job) throw new HostError('gpus: no job identity was read')
  return plan.facts.job
}

/** Writes the leases of `plan` (under the GPU lease lock), remembering each for the post step. */
async function takeLeases(ctx: Ctx, plan: GpuPlan): Promise<void> {
  const job = jobOf(plan)
  const taken: SavedLease[] = []
  for (const p of plan.picks.filter(p => p.how !== 'reused')) {
    const file = leasePath(p.device.uuid)
    if (p.how === 'taken over' && p.from) {
      core.info(
        `Taking over GPU ${p.device.index} (${p.device.uuid}) from ${holderText(p.from.lease)}: that worker process has ended.`
      )
      await takeOver(ctx.runner, file, p.from.text)
    }
    const lease = {
      uuid: p.device.uuid,
      index: p.device.index,
      pid: job.pid,
      start: job.start,
      job: job.job,
      since: new Date().toISOString()
    }
    if (!(await createExclusive(ctx.runner, file, leaseText(lease), ctx.host.tempDir))) {
      throw new HostError(
        `${file} appeared while ${GPU_LEASE_LOCK} was held: another program writes leases without that lock.`
      )
    }
    taken.push({uuid: lease.uuid, index: lease.index, pid: lease.pid, start: lease.start})
    ctx.remember({gpuLeases: taken})
    core.info(`Leased GPU ${p.device.index} (${p.device.uuid}, ${p.device.name}) to ${job.job}.`)
  }
}

/**
 * What teardown of ended jobs found so far: the lease texts whose job's leftovers are gone and
 * whose GPU is idle (those may be taken over), and the GPUs still held by an ended job's
 * leftovers, with what holds them (those count as held until a later try finds them idle).
 */
interface Takeovers {
  clean: Set<string>
  blocked: Map<string, string>
}

/** The leases as the plan must see them: a GPU an ended job's leftovers still hold is not free. */
function withBlocked(leases: Map<string, LeaseView>, t: Takeovers): Map<string, LeaseView> {
  for (const uuid of t.blocked.keys()) {
    const view = leases.get(uuid)
    if (view && !view.alive) leases.set(uuid, {...view, alive: true})
  }
  return leases
}

/** Take-overs of ended jobs whose leftovers have not been torn down yet (none when teardown is off). */
function untornTakeovers(ctx: Ctx, plan: GpuPlan, t: Takeovers): GpuPick[] {
  if (!ctx.inputs.tearDown) return []
  return plan.picks.filter(p => p.how === 'taken over' && p.from && !t.clean.has(p.from.text))
}

/**
 * Tears down each ended job among the take-overs (holding no lock: it may wait for processes to
 * end), over every GPU that job leased. Its GPUs that are idle after it may be taken over.
 */
async function tearDownEnded(ctx: Ctx, picks: GpuPick[], t: Takeovers): Promise<void> {
  const tearDown = ctx.inputs.tearDown
  if (!tearDown) return
  const leases = await readLeases(ctx.runner)
  const views = [...leases.values()]
  const ended = new Map(picks.map(p => [`${p.from?.lease.pid}:${p.from?.lease.start}`, p]))
  for (const p of ended.values()) {
    const lease = (p.from as LeaseView).lease
    const same = views.filter(v => !v.alive && heldBy(v.lease, lease))
    if (!/^\d+$/.test(lease.start) || lease.pid <= 0) {
      // A damaged lease names no worker: nothing on its GPU can be told to be that job's.
      core.info(`The lease of GPU ${lease.uuid} names no job: nothing is torn down for it.`)
      for (const v of same) t.clean.add(v.text)
      t.clean.add((p.from as LeaseView).text)
      continue
    }
    const others = new Map(
      views.filter(v => v.alive && !same.includes(v)).map(v => [v.lease.uuid, holderText(v.lease)])
    )
    core.info(
      `Tearing down what job ${lease.job} (worker pid ${lease.pid}, ended) left before taking over its GPUs.`
    )
    const out = await tearDown(ctx.runner, {
      pid: lease.pid,
      start: lease.start,
      gpus: same.map(v => v.lease.uuid),
      dead: true,
      otherLeases: others
    })
    ctx.outputs.teardown = mergeResults(ctx.outputs.teardown, out.result)
    for (const v of same) {
      const busy = out.busy.find(b => b.uuid === v.lease.uuid)
      if (busy) {
        t.blocked.set(v.lease.uuid, busy.why)
        core.info(`GPU ${v.lease.index} (${v.lease.uuid}) is not handed on yet: ${busy.why}.`)
      } else {
        t.clean.add(v.text)
        t.blocked.delete(v.lease.uuid)
      }
    }
  }
}

function mergeResults(a: TeardownResult | undefined, b: TeardownResult): TeardownResult {
  return {removed: [...(a?.removed ?? []), ...b.removed], kept: [...(a?.kept ?? []), ...b.kept]}
}

/** One try under the GPU lease lock: read the leases, plan, and take the GPUs if they suffice. */
async function tryLease(ctx: Ctx, plan: GpuPlan, fresh: boolean, t: Takeovers): Promise<GpuPlan> {
  const lock = await acquireFileLock(ctx.runner, GPU_LEASE_LOCK, ctx.host.tempDir, core.info, {
    what: `the GPU lease lock ${GPU_LEASE_LOCK}`,
    timeoutMs: 60_000,
    pollMs: 20
  })
  try {
    // After a wait the GPUs' load has changed: ask nvidia-smi again before choosing the idlest.
    const devices = fresh ? await queryGpus(ctx.runner) : plan.facts.devices
    const leases = withBlocked(await readLeases(ctx.runner), t)
    const now = planGpus({...plan.facts, devices, leases}, ctx.inputs)
    // An ended job's GPU is taken over only once what that job left is gone.
    if (now.short === 0 && untornTakeovers(ctx, now, t).length === 0) await takeLeases(ctx, now)
    return now
  } finally {
    await lock.release()
  }
}

/** Who holds the GPUs a waiting request could use, in words. */
function holders(plan: GpuPlan): string {
  return plan.held
    .map(h => `GPU ${h.device.index} (${h.device.uuid}): ${holderText(h.lease)}`)
    .join('; ')
}

/** Sleeps until the leases (read without any lock) would let the request through, or the deadline. */
async function waitForRelease(
  ctx: Ctx,
  plan: GpuPlan,
  deadline: number,
  t: Takeovers
): Promise<void> {
  // A GPU an ended job's leftovers hold is looked at again after a while: they may have ended.
  const until = t.blocked.size > 0 ? Math.min(deadline, Date.now() + RETRY_BLOCKED_MS) : deadline
  while (Date.now() < until) {
    await new Promise(r => setTimeout(r, Math.min(POLL_MS, Math.max(0, until - Date.now()))))
    const leases = withBlocked(await readLeases(ctx.runner), t)
    if (planGpus({...plan.facts, leases}, ctx.inputs).short === 0) return
  }
  t.blocked.clear()
}

/**
 * Sets the GPU outputs and exports the leased GPUs to the job's later steps; where Docker can
 * inject them by CDI name, those names too (cdi-devices, CDI_DEVICES).
 */
export function publishLeases(
  ctx: Ctx,
  picks: readonly GpuPick[],
  cdi: ReadonlySet<string> = new Set()
): void {
  const leases: GpuLeaseResult[] = picks.map(p => ({
    index: p.device.index,
    uuid: p.device.uuid,
    name: p.device.name,
    how: p.how,
    from: p.from ? holderText(p.from.lease) : undefined
  }))
  ctx.outputs.gpuLeases = leases
  const uuids = leases.map(l => l.uuid).join(',')
  // UUIDs, not indexes: CUDA numbers devices fastest first unless told otherwise, not as nvidia-smi does.
  core.exportVariable('NVIDIA_VISIBLE_DEVICES', uuids)
  core.exportVariable('CUDA_VISIBLE_DEVICES', uuids)
  if (cdi.size > 0) {
    const {names, missing} = cdiNames(leases, cdi)
    if (missing.length > 0) {
      ctx.warn(
        `cdi-devices: Docker's CDI specs name no device for leased GPU(s) ${missing.map(g => `${g.index} (${g.uuid})`).join(', ')} (a spec older than the GPUs?): left out of cdi-devices; regenerate the spec (nvidia-ctk cdi generate) or use gpu-uuids.`
      )
    }
    ctx.outputs.cdiDevices = names
    core.exportVariable('CDI_DEVICES', names.join(','))
  }
  // The same GPUs as docker run options that hold in both gpu-isolation modes.
  core.exportVariable('DOCKER_GPU_OPTIONS', dockerGpuOptions(leases))
}

/**
 * Leases the GPUs: takes them at once when enough are free, else waits up to gpu-wait (holding no
 * lock; the GPU lease lock only for each try, the host lock not at all), saying who holds what.
 * Writes one lease file per GPU in /run/docker-gpu-setup; exports NVIDIA_VISIBLE_DEVICES and
 * CUDA_VISIBLE_DEVICES.
 */
export async function applyGpus(plan: GpuPlan, ctx: Ctx): Promise<void> {
  const deadline = Date.now() + ctx.inputs.gpuWait * 1000
  let told = ''
  const t: Takeovers = {clean: new Set(), blocked: new Map()}
  for (let attempt = 0; ; attempt++) {
    const now = await tryLease(ctx, plan, attempt > 0, t)
    const untorn = now.short === 0 ? untornTakeovers(ctx, now, t) : []
    if (untorn.length > 0) {
      await tearDownEnded(ctx, untorn, t)
      continue
    }
    if (now.short === 0) {
      publishLeases(ctx, now.picks, plan.facts.cdi)
      return
    }
    const who = holders(now)
    if (Date.now() >= deadline) {
      throw new HostError(
        `gpus: ${now.need} GPU${now.need === 1 ? '' : 's'} wanted, ${now.need - now.short} free after waiting ${ctx.inputs.gpuWait} s (gpu-wait). Held by: ${who}. Raise gpu-wait, or ask for fewer GPUs.`
      )
    }
    if (who !== told) {
      core.info(
        `Waiting up to ${Math.ceil((deadline - Date.now()) / 1000)} s for ${now.short} more GPU${now.short === 1 ? '' : 's'}; held by: ${who}`
      )
      told = who
    }
    await waitForRelease(ctx, now, deadline, t)
  }
}

/** Every leased GPU's file names this job's worker: the leases are really held. */
export async function verifyGpus(plan: GpuPlan, ctx: Ctx): Promise<string> {
  const job = jobOf(plan)
  const leases = ctx.outputs.gpuLeases ?? []
  const held = await readLeases(ctx.runner)
  for (const l of leases) {
    const view = held.get(l.uuid)
    const lease = view && parseLease(view.text)
    if (!lease || !heldBy(lease, job)) {
      throw new HostError(
        `The lease of GPU ${l.index} (${l.uuid}) is not this job's after writing it.`
      )
    }
  }
  return `GPU ${leases.map(l => l.index).join(', ')} leased to ${job.process} (pid ${job.pid}) until the post step`
}
