/**
 * The GPU lease plan (pure): which GPUs this job gets now, given the GPUs, their leases and the
 * job's worker. A request is met whole or not at all: a job never sits on part of what it asked for
 * while it waits (two jobs each holding half of what the other needs would wait for ever).
 */
import {HostError} from '../../errors.js'
import type {PhasePlan, Step} from '../pipeline.js'
import {busyness, byIdleness, type GpuDevice} from './gpu-query.js'
import type {GpuId, GpuInputs} from './inputs.js'
import {heldBy, holderText, type JobIdentity, type Lease} from './lease.js'

/** A lease file as found: its content and whether its worker process still runs. */
export interface LeaseView {
  lease: Lease
  /** The text as read, to take it over only if it is still that one. */
  text: string
  alive: boolean
}

/** What detection found. */
export interface GpuFacts {
  devices: GpuDevice[]
  /** By GPU UUID, as nvidia-smi prints it. */
  leases: ReadonlyMap<string, LeaseView>
  /** Undefined when no lease is asked for. */
  job?: JobIdentity
  /** GPUs the health gate keeps from every job (gpu-health: fail), by UUID: their problems. */
  unhealthy?: ReadonlyMap<string, readonly string[]>
  /** The NVIDIA GPU names Docker can inject by CDI here (cdi-devices is set where there are any). */
  cdi?: ReadonlySet<string>
}

/** A GPU this job gets: already its own, free, or taken over from a job that has ended. */
export interface GpuPick {
  device: GpuDevice
  how: 'reused' | 'leased' | 'taken over'
  /** The ended job's lease, for a take-over. */
  from?: LeaseView
}

/** The plan: the GPUs to take (by index), or how many are missing and who holds them. */
export interface GpuPlan extends PhasePlan {
  facts: GpuFacts
  wanted: boolean
  picks: GpuPick[]
  /** How many GPUs the request lacks now (0: it can be met). */
  short: number
  /** GPUs the request could use that live jobs hold. */
  held: {device: GpuDevice; lease: Lease}[]
  need: number
}

type Status = 'mine' | 'free' | 'stale' | 'held'

function status(d: GpuDevice, facts: GpuFacts): Status {
  const view = facts.leases.get(d.uuid)
  if (!view) return 'free'
  if (!view.alive) return 'stale'
  return facts.job && heldBy(view.lease, facts.job) ? 'mine' : 'held'
}

/** An unhealthy GPU in words, for the line a request fails with. */
function sick(d: GpuDevice, facts: GpuFacts): string {
  return `GPU ${d.index} (${d.uuid}): ${(facts.unhealthy?.get(d.uuid) ?? []).join('; ')}`
}

function findGpu(devices: GpuDevice[], id: GpuId): GpuDevice {
  const hit = devices.find(d =>
    'uuid' in id ? d.uuid.toLowerCase() === id.uuid.toLowerCase() : d.index === id.index
  )
  if (hit) return hit
  const known = devices.map(d => `${d.index} (${d.uuid})`).join(', ')
  throw new HostError(
    `gpus: ${'uuid' in id ? id.uuid : `index ${id.index}`} is not a GPU of this host; nvidia-smi lists ${known}.`
  )
}

/** The GPUs the request may use, and how many of them it needs. */
function pool(facts: GpuFacts, inputs: GpuInputs): {pool: GpuDevice[]; need: number} {
  const {devices} = facts
  const r = inputs.gpus
  const bad = devices.filter(d => facts.unhealthy?.has(d.uuid))
  if (r.kind === 'list') {
    const named = r.gpus.map(id => findGpu(devices, id))
    const refused = named.filter(d => bad.includes(d))
    if (refused.length > 0) {
      throw new HostError(
        `gpus: the health gate keeps ${refused.map(d => sick(d, facts)).join(' | ')}. Name healthy GPUs, or fix these (see the gpu-health output).`
      )
    }
    return {pool: named, need: r.gpus.length}
  }
  const healthy = devices.filter(d => !bad.includes(d))
  const need = r.kind === 'count' ? r.count : healthy.length
  if (need > devices.length) {
    throw new HostError(
      `gpus: ${need} GPUs asked for, but this host has ${devices.length} (nvidia-smi lists ${devices.map(d => d.index).join(', ')}).`
    )
  }
  if (need > healthy.length || need === 0) {
    throw new HostError(
      `gpus: ${need || 'all'} GPUs asked for, but ${healthy.length} of ${devices.length} are healthy; the health gate keeps ${bad.map(d => sick(d, facts)).join(' | ')}. Fix them (see the gpu-health output), ask for fewer GPUs, or drain this runner.`
    )
  }
  return {pool: healthy, need}
}

function describePick(p: GpuPick): string {
  const gpu = `GPU ${p.device.index} (${p.device.uuid}, ${p.device.name}: ${busyness(p.device)})`
  if (p.how === 'taken over' && p.from) {
    return `take over ${gpu} from ${holderText(p.from.lease)}: that worker process has ended`
  }
  return `lease ${gpu}`
}

/** The GPUs and their leases in words, for the log and the summary. */
function found(facts: GpuFacts, plan: Omit<GpuPlan, 'found'>): string {
  const busy = facts.devices.filter(d => busyness(d) !== 'idle')
  const parts = [
    `${facts.devices.length} GPU${facts.devices.length === 1 ? '' : 's'}` +
      (busy.length > 0 ? ` (busy: ${busy.map(d => `${d.index}: ${busyness(d)}`).join('; ')})` : '')
  ]
  const others = facts.devices.filter(d => status(d, facts) === 'held')
  if (others.length > 0) {
    parts.push(`leased to other jobs: ${others.map(d => d.index).join(', ')}`)
  }
  const mine = plan.picks.filter(p => p.how === 'reused')
  if (mine.length > 0) parts.push(`already this job's: ${mine.map(p => p.device.index).join(', ')}`)
  return parts.join('; ')
}

/** Which GPUs to lease now (pure); throws HostError for a request no wait can meet. */
export function planGpus(facts: GpuFacts, inputs: GpuInputs): GpuPlan {
  if (inputs.gpus.kind === 'none') {
    return {
      ...{found: 'gpus not set: no lease', steps: [], warnings: [], facts},
      ...{wanted: false, picks: [], short: 0, held: [], need: 0}
    }
  }
  if (facts.devices.length === 0) {
    throw new HostError('gpus is set, but nvidia-smi lists no GPU on this host.')
  }
  const {pool: usable, need} = pool(facts, inputs)
  const rank = (d: GpuDevice): number => (status(d, facts) === 'mine' ? 0 : 1)
  const open = usable
    .filter(d => status(d, facts) !== 'held')
    .sort((a, b) => rank(a) - rank(b) || byIdleness(a, b))
  const held = usable
    .filter(d => status(d, facts) === 'held')
    .map(device => ({device, lease: (facts.leases.get(device.uuid) as LeaseView).lease}))
  const short = Math.max(0, need - open.length)
  const picks: GpuPick[] =
    short > 0
      ? []
      : open
          .slice(0, need)
          .map((device): GpuPick => {
            const s = status(device, facts)
            if (s === 'mine') return {device, how: 'reused'}
            if (s === 'stale')
              return {device, how: 'taken over', from: facts.leases.get(device.uuid)}
            return {device, how: 'leased'}
          })
          .sort((a, b) => a.device.index - b.device.index)
  const steps: Step[] = picks
    .filter(p => p.how !== 'reused')
    .map(p => ({description: describePick(p)}))
  if (short > 0) {
    steps.push({
      description: `wait up to ${inputs.gpuWait} s for ${need} GPU${need === 1 ? '' : 's'} (${open.length} free now; ${held.map(h => `GPU ${h.device.index} held by ${holderText(h.lease)}`).join('; ')})`
    })
  }
  const plan = {steps, warnings: [], facts, wanted: true, picks, short, held, need}
  return {...plan, found: found(facts, plan)}
}
