/** The step summary: a table of phases, the pushed images, warnings and outputs. */
import * as core from '@actions/core'
import {outputValues, type Outputs} from './outputs.js'
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

/** Bytes with a decimal unit that fits (B, kB, MB, GB, TB), three significant digits. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB']
  let value = bytes
  let unit = 0
  while (value >= 999.5 && unit < units.length - 1) {
    value /= 1000
    unit++
  }
  if (unit === 0) return `${bytes} B`
  return `${value.toFixed(value < 9.995 ? 2 : value < 99.95 ? 1 : 0)} ${units[unit]}`
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
      const size = i.size > 0 ? formatBytes(i.size) : ''
      const status = i.status === 'failed' ? `❌ failed: ${i.error ?? ''}` : i.status
      lines.push(
        `| ${cell(i.source)} | ${cell(i.target)} | ${cell(i.digest ? `\`${i.digest.slice(0, 19)}…\`` : '')} | ${cell(size)} | ${cell(status)} |`
      )
    }
  }
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
