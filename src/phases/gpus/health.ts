/**
 * The GPU health gate's verdict (pure): from what nvidia-smi, the kernel log, the loaded module and
 * the leases say, which GPUs are healthy, each problem with its evidence, what an operator does
 * about it, and the one line a failed gate ends with.
 */
import type {DeviceLossVerdict} from '../../models/device-loss.js'
import {mismatchText, parseMismatch, type ModuleVersion} from './health-driver.js'
import {xidKind, type KernelLog, type XidEvent} from './health-kernel.js'
import type {SmiGpu} from './health-smi.js'
import {holderText} from './lease.js'
import type {LeaseView} from './plan.js'

/** gpu-health: fail (unhealthy GPUs are never used), warn (report only), off. */
export type HealthMode = 'fail' | 'warn' | 'off'

/** What an operator does about a problem, mildest first. */
export type Fix = 'end process' | 'reset' | 'reboot' | 'replace'
const FIX_ORDER: readonly Fix[] = ['end process', 'reset', 'reboot', 'replace']

/** A compute process still running on a GPU whose lease names a job that has ended. */
export interface Leftover {
  pid: number
  usedMemory: number
  /** The ended job, in words. */
  job: string
}

/** What the gate read. */
export interface HealthFacts {
  /** `nvidia-smi -q -x`: the GPUs it lists, or its output when it failed. */
  smi: {gpus: SmiGpu[]} | {failed: string}
  module?: ModuleVersion
  /** Undefined when the kernel log could not be read (then `kernelUnreadable` says why). */
  kernel?: KernelLog
  kernelUnreadable?: string
  /** By GPU UUID. */
  leftovers: ReadonlyMap<string, Leftover[]>
  /** gpu-count-expected. */
  expected?: number
  /** Whether running containers lose their GPUs on daemon-reload; undefined when not judged. */
  deviceLoss?: DeviceLossVerdict
  /**
   * The PCI addresses of the GPUs this runner's driver view lists (/proc/driver/nvidia/gpus, which
   * the container toolkit limits to a container's own GPUs); undefined when it cannot be read.
   */
  driverBuses?: ReadonlySet<string>
}

/** One GPU's verdict. */
export interface GpuHealth {
  index: number
  uuid: string
  name: string
  bus: string
  healthy: boolean
  /** Each with its evidence. */
  problems: string[]
  /** The strongest fix its problems need; undefined when healthy. */
  fix?: Fix
}

/** The gate's verdict on the host. */
export interface HealthReport {
  gpus: GpuHealth[]
  /** Problems of the host rather than of one listed GPU: NVML does not answer, a GPU is missing. */
  host: string[]
  /** What is worth knowing but fails nothing: a job's own Xids, an unreadable kernel log. */
  notes: string[]
}

/** Reads `--query-compute-apps=gpu_uuid,pid,used_memory` lines: the processes per GPU UUID. */
export function computeProcesses(text: string): Map<string, {pid: number; usedMemory: number}[]> {
  const out = new Map<string, {pid: number; usedMemory: number}[]>()
  for (const line of text.split('\n')) {
    const [uuid, pid, mem] = line.split(',').map(f => f.trim())
    if (!/^GPU-/i.test(uuid ?? '') || !/^\d+$/.test(pid ?? '')) continue
    const key = uuid.toLowerCase()
    const used = Number(mem)
    out.set(key, [
      ...(out.get(key) ?? []),
      {pid: Number(pid), usedMemory: Number.isFinite(used) ? used : 0}
    ])
  }
  return out
}

/**
 * Compute processes left by ended jobs: those on a GPU whose lease names a worker that has ended.
 * A process that no longer exists on this host (`alive` false) has ended too.
 */
export function findLeftovers(
  apps: string,
  leases: ReadonlyMap<string, LeaseView>,
  alive: (pid: number) => boolean
): Map<string, Leftover[]> {
  const procs = computeProcesses(apps)
  const out = new Map<string, Leftover[]>()
  for (const [uuid, view] of leases) {
    if (view.alive) continue
    const left = (procs.get(uuid.toLowerCase()) ?? []).filter(p => alive(p.pid))
    if (left.length > 0)
      out.set(
        uuid,
        left.map(p => ({...p, job: holderText(view.lease)}))
      )
  }
  return out
}

function worst(fixes: Fix[]): Fix | undefined {
  return fixes.sort((a, b) => FIX_ORDER.indexOf(b) - FIX_ORDER.indexOf(a))[0]
}

/** The Xids of one PCI address that count against a GPU, one problem per code (first line kept). */
function xidProblems(xids: XidEvent[]): {problems: string[]; fixes: Fix[]; notes: string[]} {
  const byCode = new Map<number, XidEvent[]>()
  for (const x of xids) byCode.set(x.code, [...(byCode.get(x.code) ?? []), x])
  const problems: string[] = []
  const notes: string[] = []
  const fixes: Fix[] = []
  for (const [code, all] of byCode) {
    const kind = xidKind(code)
    const times = all.length > 1 ? ` (${all.length} times; the first: "${all[0].line}")` : ''
    const text = `Xid ${code} (${kind.what})${times || `: "${all[0].line}"`}`
    if (kind.class === 'informational') notes.push(text)
    else {
      problems.push(text)
      fixes.push(kind.class === 'fatal' ? 'reboot' : 'reset')
    }
  }
  return {problems, fixes, notes}
}

function smiProblems(g: SmiGpu): {problems: string[]; fixes: Fix[]} {
  const problems: string[] = []
  const fixes: Fix[] = []
  if (g.unanswered !== undefined) {
    // NVML cannot get its handle: the GPU is lost to the driver (fallen off the bus, as a rule).
    problems.push(`nvidia-smi cannot query it while the other GPUs answer: "${g.unanswered}"`)
    fixes.push('reboot')
  }
  for (const u of g.uncorrectable) {
    problems.push(`${u.count} uncorrectable ECC error${u.count === 1 ? '' : 's'} (${u.field})`)
    fixes.push('reset')
  }
  if (g.pendingRetirement) {
    problems.push('retired pages pending (retired_pages: pending_retirement Yes)')
    fixes.push('reset')
  }
  if (g.remapPending) {
    problems.push('row remapping pending (remapped_rows: remapped_row_pending Yes)')
    fixes.push('reset')
  }
  if (g.remapFailure) {
    problems.push('row remapping failed (remapped_rows: remapped_row_failure Yes)')
    fixes.push('replace')
  }
  if (g.resetRequired) {
    problems.push('the driver asks for a reset (gpu_reset_status)')
    fixes.push('reset')
  }
  if (g.unread.length > 0) {
    const fields = g.unread.map(f => `${f.path} ${f.value}`).join(', ')
    problems.push(`nvidia-smi cannot read ${fields}`)
    fixes.push('reset')
  }
  return {problems, fixes}
}

/** The gate's verdict (pure). */
export function assessHealth(facts: HealthFacts): HealthReport {
  const host: string[] = []
  const notes: string[] = []
  if (facts.kernelUnreadable) notes.push(`kernel log not read: ${facts.kernelUnreadable}`)
  if ('failed' in facts.smi) {
    const mismatch = parseMismatch(facts.smi.failed)
    host.push(
      mismatch
        ? mismatchText(mismatch.library, facts.module)
        : `nvidia-smi -q -x failed, NVML does not answer: ${facts.smi.failed.trim().split('\n').slice(-2).join(' ')}`
    )
    return {gpus: [], host, notes}
  }
  const xids = facts.kernel?.xids ?? []
  const gpus = facts.smi.gpus.map((g, index): GpuHealth => {
    const fromXid = xidProblems(xids.filter(x => g.bus !== '' && x.bus === g.bus))
    for (const n of fromXid.notes) notes.push(`GPU ${index} (${g.uuid}): ${n}`)
    const fromSmi = smiProblems(g)
    const left = facts.leftovers.get(g.uuid) ?? []
    const leftover = left.map(
      p => `compute process ${p.pid} (${p.usedMemory} MiB) of ${p.job}, which has ended, still runs`
    )
    const problems = [...fromXid.problems, ...fromSmi.problems, ...leftover]
    const fix = worst([
      ...fromXid.fixes,
      ...fromSmi.fixes,
      ...(left.length > 0 ? (['end process'] as Fix[]) : [])
    ])
    return {
      index,
      // A GPU that did not answer is named by the UUID the driver logged for its address.
      uuid: g.uuid || facts.kernel?.gpuAt.get(g.bus) || `PCI ${g.bus}`,
      name: g.name,
      bus: g.bus,
      healthy: problems.length === 0,
      problems,
      fix
    }
  })
  // A GPU that fell off the bus may be missing from nvidia-smi's list: its Xids still say so.
  const listed = new Set(gpus.map(g => g.bus))
  const strays = new Map<string, XidEvent[]>()
  for (const x of xids.filter(x => !listed.has(x.bus))) {
    strays.set(x.bus, [...(strays.get(x.bus) ?? []), x])
  }
  for (const [bus, events] of strays) {
    const {problems} = xidProblems(events)
    // Only a bus the driver named as one of its GPUs since it loaded is this host's missing GPU,
    // and only where this runner sees it: the kernel log is the whole host's, and a runner in a
    // container given some of the GPUs reads the Xids of the others too.
    const uuid = facts.kernel?.gpuAt.get(bus)
    const seen = facts.driverBuses === undefined || facts.driverBuses.has(bus)
    for (const p of problems) {
      const text = `GPU at PCI ${bus}${uuid ? ` (${uuid})` : ''}, not listed by nvidia-smi: ${p}`
      if (uuid && seen) host.push(text)
      else notes.push(seen ? text : `${text} (a GPU this runner does not see)`)
    }
  }
  if (facts.expected !== undefined && gpus.length < facts.expected) {
    host.push(
      `nvidia-smi lists ${gpus.length} GPU${gpus.length === 1 ? '' : 's'}, gpu-count-expected is ${facts.expected}: a GPU is missing (fallen off the bus, or not initialised)`
    )
  }
  return {gpus, host, notes}
}

/** What to do about one unhealthy GPU, in words. */
export function fixText(g: GpuHealth): string {
  switch (g.fix) {
    case 'end process':
      return 'end the leftover process or wait for it'
    case 'reset':
      return `reset it (nvidia-smi -r -i ${g.index}, with nothing running on it; an Xid counts until the driver reloads) or reboot the host`
    case 'reboot':
      return 'reboot the host'
    case 'replace':
      return 'drain the runner and have the GPU replaced'
    default:
      return 'nothing'
  }
}

/** One unhealthy GPU in words: which, what (with the evidence), and what to do. */
export function gpuProblemText(g: GpuHealth): string {
  return `GPU ${g.index} (${g.uuid}${g.bus ? `, PCI ${g.bus}` : ''}): ${g.problems.join('; ')}; ${fixText(g)}`
}

/**
 * The one line a failed gate ends with: every unhealthy GPU and host problem, how many GPUs are
 * healthy against how many are needed, and what to do.
 */
export function operatorLine(report: HealthReport, need?: number): string {
  const bad = report.gpus.filter(g => !g.healthy).map(gpuProblemText)
  const healthy = report.gpus.filter(g => g.healthy).length
  const count =
    report.gpus.length === 0
      ? 'No GPU answers'
      : `${healthy} of ${report.gpus.length} GPU${report.gpus.length === 1 ? '' : 's'} healthy${need === undefined ? '' : `, ${need} needed`}`
  const drain =
    report.host.length > 0 || healthy === 0
      ? 'drain this runner (take it offline) until the host is fixed'
      : 'fix them, or ask for fewer GPUs'
  const problems = [...report.host, ...bad].join(' | ')
  return `gpu-health: ${problems ? `${problems}. ` : ''}${count}: ${drain}.`
}

/** The `gpu-health` output: by UUID, whether it is healthy and its problems with their evidence. */
export function healthOutput(
  report: HealthReport
): Record<string, {healthy: boolean; problems: string[]}> {
  return Object.fromEntries(
    report.gpus.map(g => [g.uuid, {healthy: g.healthy, problems: g.problems}])
  )
}
