/** The disk phase's effects: removes what the plan allows a batch at a time, measuring free space (statfs) after each, and the final check. */
import {promises as fs} from 'node:fs'
import {HostError} from '../../errors.js'
import type {DiskResult} from '../../outputs.js'
import type {PhaseContext} from '../pipeline.js'
import {freeSpace, systemDf} from './detect.js'
import type {DiskSettings} from './inputs.js'
import type {DiskPlan, Removal} from './plan.js'
import {formatBytes} from '../../docker/sizes.js'

type Ctx = PhaseContext<DiskSettings>

function result(ctx: Ctx): DiskResult {
  if (!ctx.outputs.disk) throw new HostError('The disk phase has no measurement of the data root.')
  return ctx.outputs.disk
}

/** The next batch: removals of one kind and rule whose sizes together cover what is still missing. */
function nextBatch(removals: Removal[], from: number, missing: number): Removal[] {
  const batch = [removals[from]]
  let bytes = removals[from].bytes
  for (let i = from + 1; i < removals.length; i++) {
    const r = removals[i]
    if (bytes >= missing || r.kind !== batch[0].kind || r.tier !== batch[0].tier) break
    batch.push(r)
    bytes += r.bytes
  }
  return batch
}

/** Runs one batch; returns what it removed, in words, and each refusal as a warning. */
async function remove(ctx: Ctx, batch: Removal[]): Promise<string[]> {
  const first = batch[0]
  const opts = {root: true, allowFailure: true, timeoutSeconds: 600}
  if (first.kind === 'build-cache') {
    const age = ctx.inputs.pruneAge.seconds
    const r = await ctx.runner.run(
      [
        'docker',
        'builder',
        'prune',
        '--force',
        '--all',
        '--keep-storage',
        String(first.keep),
        '--filter',
        `until=${age}s`
      ],
      opts
    )
    if (r.exitCode !== 0) ctx.warn(`docker builder prune failed: ${r.stderr.trim()}`)
    const reclaimed = /Total:?\s*(?:reclaimed space:)?\s*(\S+)/i.exec(r.stdout)?.[1]
    return r.exitCode === 0 ? [`${first.label}${reclaimed ? ` (${reclaimed} reclaimed)` : ''}`] : []
  }
  const argv =
    first.kind === 'container'
      ? ['docker', 'rm', ...batch.map(b => (b.kind === 'container' ? b.id : ''))]
      : ['docker', 'rmi', ...batch.flatMap(b => (b.kind === 'image' ? b.ids : []))]
  // By ID: a tag names whatever another job tagged last, an ID only the image planned for. Never
  // --force: an image or container another job began to use meanwhile is refused, and kept (so is
  // an image tagged in several repositories, which Docker removes by ID only when forced).
  const r = await ctx.runner.run(argv, opts)
  for (const line of r.stderr.split('\n').filter(l => l.trim() !== '')) {
    ctx.warn(`kept: ${line.replace(/^Error response from daemon: /, '')}`)
  }
  const out = r.stdout
  return batch
    .filter(b =>
      b.kind === 'container'
        ? out.includes(b.id)
        : b.kind === 'image' && b.ids.some(id => out.includes(`Deleted: ${id}`))
    )
    .map(b => b.label)
}

/**
 * Removes what the plan allows, in its order, a batch at a time, measuring the free space after
 * each batch and stopping as soon as min-free-space is met. Runs under the host lock.
 */
export async function applyDisk(plan: DiskPlan, ctx: Ctx): Promise<void> {
  const disk = result(ctx)
  let free = plan.facts.free
  for (let i = 0; i < plan.removals.length && free < plan.minFree;) {
    const batch = nextBatch(plan.removals, i, plan.minFree - free)
    i += batch.length
    disk.removed.push(...(await remove(ctx, batch)))
    free = await freeSpace(plan.facts.dataRoot)
  }
}

/** Measures the data root again and records freed-bytes and `docker system df` after. */
export async function verifyDisk(plan: DiskPlan, ctx: Ctx): Promise<string> {
  const disk = result(ctx)
  disk.freeAfter = await freeSpace(plan.facts.dataRoot)
  disk.freedBytes = Math.max(0, disk.freeAfter - disk.freeBefore)
  disk.dfAfter = await systemDf(ctx.runner)
  return `${formatBytes(disk.freeAfter)} free on ${disk.dataRoot}: freed ${formatBytes(disk.freedBytes)} (${disk.removed.length} removal${disk.removed.length === 1 ? '' : 's'})`
}

/** The registries' data folders on the data root's file system, with their sizes (du). */
async function registryData(ctx: Ctx, dataRoot: string): Promise<string[]> {
  const dev = (await fs.stat(dataRoot)).dev
  const out: string[] = []
  for (const dir of ctx.inputs.registryData) {
    const st = await fs.stat(dir).catch(() => undefined)
    if (st?.dev !== dev) continue
    const du = await ctx.runner.run(['du', '-sxB1', '--', dir], {
      root: true,
      allowFailure: true,
      timeoutSeconds: 120
    })
    const bytes = Number(du.stdout.split('\t')[0])
    if (Number.isFinite(bytes) && du.stdout !== '')
      out.push(`the registry data in ${dir} ${formatBytes(bytes)} (never pruned)`)
  }
  return out
}

/** Fails when free space is still short after all the rules allow: how much, and what holds it. */
export async function checkDisk(plan: DiskPlan, ctx: Ctx): Promise<void> {
  if (!plan.facts.wanted) return
  if (!plan.facts.dockerUp) {
    throw new HostError(
      `min-free-space is set, but Docker does not answer: its data root cannot be checked.`
    )
  }
  const disk = result(ctx)
  if (disk.freeAfter >= plan.minFree) return
  const held = [
    ...plan.kept.map(
      k => `${k.reason} ${formatBytes(k.bytes)}${k.count > 1 ? ` (${k.count})` : ''}`
    ),
    ...(await registryData(ctx, disk.dataRoot))
  ]
  throw new HostError(
    `min-free-space: ${formatBytes(plan.minFree)} must be free on ${disk.dataRoot}, ${formatBytes(disk.freeAfter)} is after removing all the pruning rules allow (freed ${formatBytes(disk.freedBytes)}): ${formatBytes(plan.minFree - disk.freeAfter)} missing. The space is held by: ${held.length > 0 ? held.join('; ') : 'files outside Docker'}${held.length > 0 ? '; and files outside Docker' : ''}.`
  )
}
