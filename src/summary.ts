/** The step summary: a table of phases, the pushed images, warnings and outputs. */
import * as core from '@actions/core'
import {outputValues, type DiskResult, type GpuLeaseResult, type Outputs} from './outputs.js'
import {formatBytes} from './phases/disk/sizes.js'
import type {PhaseReport} from './phases/pipeline.js'

/** What the summary shows. */
export interface SummaryData {
  reports: readonly PhaseReport[]
  /** The outputs as the run left them; the images among them get a row each. */
  outputs: Outputs
  warnings: readonly string[]
  error?: string
  dryRun: boolean
  seconds: number
}

const STATUS_ICON: Record<PhaseReport['status'], string> = {
  unchanged: '✅ unchanged',
  changed: '🔧 changed',
  'would change': '📝 would change',
  failed: '❌ failed'
}

/** Escapes text for one markdown table cell. */
function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, '<br>') || '—'
}

/** The GPUs leased to the job, one row each. */
function gpuSection(leases: readonly GpuLeaseResult[]): string[] {
  if (leases.length === 0) return []
  const how = (l: GpuLeaseResult) => (l.from ? `${l.how} from ${l.from}` : l.how)
  return [
    '',
    '### GPUs leased to this job',
    '',
    '| GPU | UUID | Name | Lease |',
    '|---|---|---|---|',
    ...leases.map(l => `| ${l.index} | \`${l.uuid}\` | ${cell(l.name)} | ${cell(how(l))} |`)
  ]
}

/** What the disk phase removed, with `docker system df` before and after (only when it had to). */
function diskSection(disk: DiskResult | undefined): string[] {
  if (!disk?.dfBefore) return []
  const lines = [
    '',
    '### Disk space',
    '',
    `${disk.dataRoot}: ${formatBytes(disk.freeBefore)} → ${formatBytes(disk.freeAfter)} free (min-free-space ${formatBytes(disk.minFree)}; freed ${formatBytes(disk.freedBytes)}).`,
    '',
    ...(disk.removed.length > 0
      ? ['Removed, in this order:', '', ...disk.removed.map(r => `- ${r}`)]
      : ['Nothing the pruning rules allow was left to remove.'])
  ]
  const df = (title: string, text: string | undefined) =>
    text === undefined ? [] : ['', `${title}:`, '', '```', text, '```']
  return [
    ...lines,
    '',
    '<details><summary>docker system df</summary>',
    ...df('Before', disk.dfBefore),
    ...df('After', disk.dfAfter),
    '',
    '</details>'
  ]
}

/** The step summary as markdown (pure): one row per phase, then warnings and outputs. */
export function renderSummary(data: SummaryData): string {
  const lines: string[] = []
  const verdict = data.error
    ? '❌ failed'
    : data.dryRun
      ? '📝 dry run: nothing was changed'
      : data.reports.some(r => r.status === 'changed')
        ? '🔧 host updated'
        : '✅ host already right: nothing changed'
  lines.push(`## docker-gpu-setup: ${verdict} (${data.seconds.toFixed(1)} s)`, '')
  if (data.error) lines.push(`> **Error:** ${data.error.split('\n')[0]}`, '')
  lines.push('| Phase | Status | Found | Changes | Result |', '|---|---|---|---|---|')
  for (const r of data.reports) {
    lines.push(
      `| ${cell(r.phase)} | ${STATUS_ICON[r.status]} | ${cell(r.found)} | ${cell(r.changes.join('\n'))} | ${cell(r.result)} |`
    )
  }
  const images = data.outputs.images ?? []
  if (images.length > 0) {
    lines.push(
      '',
      '### Images',
      '',
      '| Source | Target | Digest | Size | Status |',
      '|---|---|---|---|---|'
    )
    for (const i of images) {
      const size = i.size > 0 ? `${(i.size / 1e6).toFixed(1)} MB` : ''
      const status = i.status === 'failed' ? `❌ failed: ${i.error ?? ''}` : i.status
      lines.push(
        `| ${cell(i.source)} | ${cell(i.target)} | ${cell(i.digest ? `\`${i.digest.slice(0, 19)}…\`` : '')} | ${cell(size)} | ${cell(status)} |`
      )
    }
  }
  lines.push(...gpuSection(data.outputs.gpuLeases ?? []), ...diskSection(data.outputs.disk))
  if (data.warnings.length > 0) {
    lines.push('', '### Warnings', '', ...data.warnings.map(w => `- ${w}`))
  }
  const outputs = Object.entries(outputValues(data.outputs)).filter(
    ([k, v]) => v !== '' && k !== 'images' && k !== 'digests'
  )
  if (outputs.length > 0) {
    lines.push('', '<details><summary>Outputs</summary>', '', '| Output | Value |', '|---|---|')
    for (const [k, v] of outputs) lines.push(`| \`${k}\` | ${cell(v)} |`)
    lines.push('', '</details>')
  }
  return `${lines.join('\n')}\n`
}

/** Appends the summary to GITHUB_STEP_SUMMARY; without it (a person running the action by hand), prints it. */
export async function writeSummary(markdown: string, env = process.env): Promise<void> {
  if (!env.GITHUB_STEP_SUMMARY) {
    core.info(markdown)
    return
  }
  await core.summary.addRaw(markdown).write()
}
