import * as core from '@actions/core'
import type {OutputName, PhaseReport} from './pipeline.js'

export interface SummaryData {
  reports: readonly PhaseReport[]
  outputs: Partial<Record<OutputName, string>>
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
  if (data.warnings.length > 0) {
    lines.push('', '### Warnings', '', ...data.warnings.map(w => `- ${w}`))
  }
  const outputs = Object.entries(data.outputs).filter(([, v]) => v !== undefined && v !== '')
  if (outputs.length > 0) {
    lines.push('', '<details><summary>Outputs</summary>', '', '| Output | Value |', '|---|---|')
    for (const [k, v] of outputs) lines.push(`| \`${k}\` | ${cell(String(v))} |`)
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
