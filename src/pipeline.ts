import * as core from '@actions/core'
import type {CommandRunner} from './exec/runner.js'
import type {Inputs} from './inputs.js'
import type {OsRelease} from './system/os-release.js'

/** Names of the action's outputs (action.yml). */
export type OutputName =
  | 'docker-version'
  | 'docker-changed'
  | 'daemon-config-changed'
  | 'nvidia-runtime'
  | 'gpu-count'
  | 'driver-version'
  | 'cuda-version'
  | 'registry'
  | 'registry-started'
  | 'images'
  | 'digests'

/** Facts about the host the action runs on, read once. */
export interface HostInfo {
  os: OsRelease
  isRoot: boolean
  /** The user the runner runs as (SUDO_USER when run under sudo, else the current user). */
  user: string
  /** systemd is PID 1 (`/run/systemd/system` exists), not merely installed. */
  systemd: boolean
  /** Folder for this job's temporary files (RUNNER_TEMP or the OS temp dir). */
  tempDir: string
}

/** What every phase gets: validated inputs, the host, the injected runner, and the outputs to fill. */
export interface RunContext {
  inputs: Inputs
  host: HostInfo
  runner: CommandRunner
  outputs: Partial<Record<OutputName, string>>
  /** Warnings for the log and the summary. */
  warn(message: string): void
  /** Remembered for the post step (core.saveState). */
  saveState(name: string, value: string): void
}

/** A planned change, described for the log, the dry run and the summary. */
export interface Step {
  description: string
}

/** What a phase's planner returns: what it found and the steps that would make the host right. */
export interface PhasePlan {
  found: string
  steps: Step[]
}

/** One phase of the pipeline: detect → plan → apply → verify. An unchanged host plans no step. */
export interface Phase<Facts, Plan extends PhasePlan> {
  readonly name: string
  /** Reads the host; changes nothing. */
  detect(ctx: RunContext): Promise<Facts>
  /** Turns facts into steps; pure. */
  plan(facts: Facts, ctx: RunContext): Plan
  /** Carries out the plan (only called when it has steps and this is not a dry run). */
  apply(plan: Plan, ctx: RunContext): Promise<void>
  /** Proves the result (after apply); returns what to show as the phase's final state. */
  verify(plan: Plan, ctx: RunContext): Promise<string>
  /** Runs after apply, or when nothing needed changing (never in a dry run): checks that prove the state. */
  check?(plan: Plan, ctx: RunContext, changed: boolean): Promise<void>
}

/** One row of the summary. */
export interface PhaseReport {
  phase: string
  status: 'unchanged' | 'changed' | 'would change' | 'failed'
  found: string
  changes: string[]
  result: string
}

/** Runs the phases in order, each in a log group; stops after planning when dry-run is set. */
export async function runPipeline(
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  phases: readonly Phase<any, PhasePlan>[],
  ctx: RunContext,
  reports: PhaseReport[]
): Promise<void> {
  for (const phase of phases) {
    await core.group(phase.name, async () => {
      const report: PhaseReport = {
        phase: phase.name,
        status: 'failed',
        found: '',
        changes: [],
        result: ''
      }
      reports.push(report)
      const facts: unknown = await phase.detect(ctx)
      const plan = phase.plan(facts, ctx)
      report.found = plan.found
      report.changes = plan.steps.map(s => s.description)
      core.info(`Found: ${plan.found}`)
      if (plan.steps.length === 0) {
        core.info('Nothing to change.')
        if (!ctx.inputs.dryRun) await phase.check?.(plan, ctx, false)
        report.status = 'unchanged'
        report.result = plan.found
        return
      }
      core.info(`${ctx.inputs.dryRun ? 'Would change' : 'Plan'}:`)
      for (const step of plan.steps) core.info(`  - ${step.description}`)
      if (ctx.inputs.dryRun) {
        report.status = 'would change'
        report.result = 'dry run: nothing changed'
        return
      }
      await phase.apply(plan, ctx)
      report.result = await phase.verify(plan, ctx)
      await phase.check?.(plan, ctx, true)
      report.status = 'changed'
      core.info(`Result: ${report.result}`)
    })
  }
}
