/**
 * The step summary (pure): a verdict, a line per phase with the facts a person looks for, the
 * changes, the images (failed ones first and in view), the digests to copy, warnings and outputs.
 * Long lists sit in collapsed sections, so the page reads the same with 3 images or 60.
 */
import {formatBytes as sizeText} from '../docker/sizes.js'
import {
  digestsText,
  outputValues,
  type DiskResult,
  type GpuLeaseResult,
  type ImageResult,
  type Outputs,
  type TeardownResult
} from '../outputs.js'
import type {Fact, PhaseReport} from '../phases/pipeline.js'
import {teardownLines} from '../phases/teardown/facts.js'
import {details, fence, inline, joined, list, table, type Inline} from './markdown.js'

/** What the summary shows. */
export interface SummaryData {
  reports: readonly PhaseReport[]
  /** The outputs as the run left them; the images among them get a row each. */
  outputs: Outputs
  warnings: readonly string[]
  error?: string
  dryRun: boolean
  seconds: number
  /** Which action ran (the root or a sub-action), as its heading names it. */
  title?: string
}

/** Images listed in view; more than this and the table is collapsed. */
export const IMAGES_IN_VIEW = 10
/** Steps listed per phase; the log has every one. */
export const STEPS_PER_PHASE = 8
/** Characters of an error's first line shown in view. */
const ERROR_LINE = 300

/** An image's size as the summary shows it: its unit that fits; '' when unknown (0). */
export function formatBytes(bytes: number): string {
  return bytes > 0 ? sizeText(bytes) : ''
}

/** The digest as people quote it: the algorithm and 12 hex digits. */
export function shortDigest(digest: string): string {
  const m = /^([a-z0-9]+):([0-9a-f]{12})[0-9a-f]*$/.exec(digest)
  return m ? `${m[1]}:${m[2]}` : digest
}

/** One fact: "3 pushed", "no NVIDIA driver", "runtimes `nvidia`, `runc`", "Docker `27.3.1` (docker-ce)". */
function factInline(f: Fact): Inline {
  const note = f.note ? ` (${f.note})` : ''
  if (f.value === null) return `no ${f.label}${note}`
  if (f.value === true) return `${f.label}${note}`
  if (typeof f.value === 'number') return `${f.value} ${f.label}${note}`
  const values = typeof f.value === 'string' ? [f.value] : f.value
  const shown: Inline = values.length === 0 ? 'none' : joined(values.map(code), ', ')
  return [`${f.label} `, shown, note]
}

const code = (text: string): Inline => ({code: text})

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`

/** The status cell: what happened, with the number of steps behind it. */
function statusCell(r: PhaseReport): string {
  const steps = plural(r.changes.length, 'step')
  switch (r.status) {
    case 'unchanged':
      return '✅ unchanged'
    case 'changed':
      return `🔧 changed: ${steps}`
    case 'would change':
      return `📝 would change: ${steps}`
    case 'failed':
      return '❌ failed'
  }
}

/** The facts cell; a phase that showed none falls back to its own sentence. */
function factsCell(r: PhaseReport): Inline {
  if (r.facts.length > 0) return joined(r.facts.map(factInline), ' · ')
  return r.status === 'changed' ? r.result : r.found
}

function verdict(data: SummaryData): string {
  if (data.error) return '❌ failed'
  if (data.dryRun) return '📝 dry run: nothing was changed'
  return data.reports.some(r => r.status === 'changed')
    ? '🔧 host updated'
    : '✅ host already right: nothing changed'
}

/** The longest start of `line` that ends a sentence (or else a list item) within `max` characters. */
function shortened(line: string, max: number): string {
  if (line.length <= max) return line
  const head = line.slice(0, max)
  const cut = [head.lastIndexOf('. '), head.lastIndexOf(', ')].find(i => i > 0)
  return `${cut === undefined ? head : head.slice(0, cut + 1)} …`
}

/**
 * The error's first line in view; the lines after it (a daemon's log, a command's output) as they
 * are. A first line too long to read at a glance (a push naming every image) is cut at a sentence
 * in view, and given whole below.
 */
function errorBlock(error: string): string[] {
  const text = error.replace(/\r\n?/g, '\n').trim()
  const [first, ...rest] = text.split('\n')
  const short = shortened(first, ERROR_LINE)
  const more = rest.join('\n').replace(/^\n+/, '')
  return [
    '',
    `> **Error:** ${inline(short)}`,
    ...(short !== first
      ? ['', ...details('The whole error', fence(text))]
      : more
        ? ['', ...fence(more)]
        : [])
  ]
}

/** The steps of every phase that has some, a few each, collapsed (open in a dry run: they are its answer). */
function changesBlock(data: SummaryData): string[] {
  const withSteps = data.reports.filter(r => r.changes.length > 0)
  if (withSteps.length === 0) return []
  const total = withSteps.reduce((n, r) => n + r.changes.length, 0)
  const items = withSteps.flatMap(r => {
    const shown = r.changes.slice(0, STEPS_PER_PHASE)
    const left = r.changes.length - shown.length
    const more = left > 0 ? [`… and ${left} more (the log lists each one)`] : []
    return [r.phase, {nested: [...shown, ...more]}]
  })
  const title = `${data.dryRun ? 'Would change' : 'Changes'}: ${plural(total, 'step')}`
  return ['', ...details(title, list(items), data.dryRun)]
}

/** "58 pushed, 1 unchanged, 1 failed", leaving out what is zero. */
function imageCounts(images: readonly ImageResult[]): string {
  const counts = (['pushed', 'unchanged', 'failed'] as const)
    .map(s => [images.filter(i => i.status === s).length, s] as const)
    .filter(([n]) => n > 0)
  return counts.map(([n, s]) => `${n} ${s}`).join(', ')
}

/** Failed images in view first; the others in a table, collapsed when long; the digests to copy. */
function imagesBlock(images: readonly ImageResult[]): string[] {
  if (images.length === 0) return []
  const failed = images.filter(i => i.status === 'failed')
  const landed = images.filter(i => i.status !== 'failed')
  const lines = ['', `### Images: ${imageCounts(images)}`]
  if (failed.length > 0) {
    lines.push(
      '',
      ...table(
        ['Not pushed', 'Source', 'Error'],
        failed.map(i => [code(i.target), code(i.source), i.error ?? ''])
      )
    )
  }
  if (landed.length > 0) {
    const rows = table(
      ['Target', 'Source', 'Digest', 'Size', 'Status'],
      landed.map(i => [
        code(i.target),
        code(i.source),
        i.digest ? code(shortDigest(i.digest)) : '',
        formatBytes(i.size),
        i.status
      ])
    )
    lines.push('', ...(landed.length > IMAGES_IN_VIEW ? details(imageCounts(landed), rows) : rows))
  }
  const digests = digestsText(images)
  if (digests !== '') {
    const count = digests.split('\n').length
    lines.push(
      '',
      ...details([`Digests: ${count} (the `, code('digests'), ' output)'], fence(digests))
    )
  }
  return lines
}

function warningsBlock(warnings: readonly string[]): string[] {
  if (warnings.length === 0) return []
  return ['', `### ⚠️ Warnings: ${warnings.length}`, '', ...list(warnings)]
}

/** The GPUs leased to the job, one row each. */
function gpusBlock(leases: readonly GpuLeaseResult[]): string[] {
  if (leases.length === 0) return []
  const how = (l: GpuLeaseResult): string => (l.from ? `${l.how} from ${l.from}` : l.how)
  const rows = leases.map((l): Inline[] => [String(l.index), code(l.uuid), l.name, how(l)])
  return ['', '### GPUs leased to this job', '', ...table(['GPU', 'UUID', 'Name', 'Lease'], rows)]
}

/** What teardown of an ended job removed and left: one line per kind. */
export function teardownBlock(r: TeardownResult | undefined, title: string): string[] {
  if (!r) return []
  const lines = teardownLines(r)
  return [
    '',
    `### ${title}`,
    '',
    ...(lines.length > 0 ? list(lines) : ['Nothing was left behind.'])
  ]
}

/** What the disk phase removed, with `docker system df` before and after (only when it had to). */
function diskBlock(disk: DiskResult | undefined): string[] {
  if (!disk?.dfBefore) return []
  const removed =
    disk.removed.length > 0
      ? ['Removed, in this order:', '', ...list(disk.removed)]
      : ['Nothing the pruning rules allow was left to remove.']
  const df = [
    'Before:',
    '',
    ...fence(disk.dfBefore),
    ...(disk.dfAfter === undefined ? [] : ['', 'After:', '', ...fence(disk.dfAfter)])
  ]
  return [
    '',
    '### Disk space',
    '',
    inline([
      code(disk.dataRoot),
      `: ${sizeText(disk.freeBefore)} → ${sizeText(disk.freeAfter)} free (min-free-space ${sizeText(disk.minFree)}; freed ${sizeText(disk.freedBytes)}).`
    ]),
    '',
    ...removed,
    '',
    ...details('docker system df', df)
  ]
}

/** An image path to show for an upstream: NGC's best-known image, a placeholder elsewhere. */
function examplePath(host: string): string {
  return host === 'nvcr.io' ? 'nvidia/pytorch:24.05-py3' : '<path>:<tag>'
}

/** One row per pull-through cache: how to pull an upstream image through it. */
function cachesBlock(caches: Readonly<Record<string, string>>): string[] {
  const rows = Object.entries(caches).map(([upstream, address]): Inline[] => {
    const host = upstream.replace(/^[a-z]+:\/\//i, '')
    const path = examplePath(host)
    return [
      upstream,
      address,
      [code(`docker pull ${address}/${path}`), ' instead of ', code(`${host}/${path}`)]
    ]
  })
  if (rows.length === 0) return []
  return [
    '',
    '### Pull-through caches',
    '',
    ...table(['Upstream', 'Cache', 'Pull through it'], rows)
  ]
}

/** Every output that has a value, except the images, digests and caches shown above. */
function outputsBlock(outputs: Outputs): string[] {
  const rows = Object.entries(outputValues(outputs))
    .filter(([k, v]) => v !== '' && k !== 'images' && k !== 'digests' && k !== 'caches')
    .map(([k, v]): Inline[] => [code(k), v])
  if (rows.length === 0) return []
  return ['', ...details('Outputs', table(['Output', 'Value'], rows))]
}

/** The step summary as markdown; no table without rows, every value escaped in markdown.ts. */
export function renderSummary(data: SummaryData): string {
  const lines = [
    `## ${data.title ?? 'docker-gpu-setup'}: ${verdict(data)} (${data.seconds.toFixed(1)} s)`
  ]
  if (data.error) lines.push(...errorBlock(data.error))
  if (data.reports.length > 0) {
    lines.push(
      '',
      ...table(
        ['Phase', 'Status', 'Facts'],
        data.reports.map(r => [r.phase, statusCell(r), factsCell(r)])
      )
    )
  }
  lines.push(
    ...changesBlock(data),
    ...imagesBlock(data.outputs.images ?? []),
    ...cachesBlock(data.outputs.caches ?? {}),
    ...gpusBlock(data.outputs.gpuLeases ?? []),
    ...teardownBlock(data.outputs.teardown, 'Teardown of ended jobs on these GPUs'),
    ...diskBlock(data.outputs.disk),
    ...warningsBlock(data.warnings),
    ...outputsBlock(data.outputs)
  )
  return `${lines.join('\n')}\n`
}
