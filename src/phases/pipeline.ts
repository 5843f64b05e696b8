/**
 * The phase contract and the loop that runs phases: detect → plan → apply → verify, each phase in
 * its own log group, planning only in a dry run. Every phase implements Phase over its own inputs.
 */
import * as core from '@actions/core'
import type {CommandRunner} from '../exec/runner.js'
import type {HostInfo} from '../host.js'
import type {Outputs} from '../outputs.js'
import type {PostStateUpdate} from '../state.js'

/** What a planner may read: the phase's inputs and the host's facts. Data only. */
export interface PlanContext<I> {
  readonly inputs: I
  readonly host: HostInfo
}

/** What a phase's effects get: its inputs, the host, the injected runner, and the run's records. */
export interface PhaseContext<I> extends PlanContext<I> {
  readonly runner: CommandRunner
  /** Filled as the phase learns things; written once at the end of the run, failed or not. */
  readonly outputs: Outputs
  /** A warning for the log and the summary. */
  warn(message: string): void
  /** Records, at once, what the post step may have to undo. */
  remember(update: PostStateUpdate): void
  /** Sets what the summary shows for this phase; the latest call wins (detection, then verification). */
  show(facts: readonly Fact[]): void
}

/**
 * One fact a person looks for in a phase (a version, a service, a path, a count), kept as data so
 * the summary lays it out and escapes it, and nothing parses it back out of a sentence.
 */
export interface Fact {
  /** What it is: "Docker", "service", "runtimes", "pushed". */
  label: string
  /**
   * A count (shown before the label), a value or list (shown after it as code), true when the thing
   * is there but has no value to show, or null when it is not there ("no <label>").
   */
  value: number | string | readonly string[] | true | null
  /** Plain words after the value, e.g. "not running". */
  note?: string
}

/** A planned change, described for the log, the dry run and the summary. */
export interface Step {
  description: string
}

/** What a phase's planner returns: what it found, the steps that make the host right, and warnings. */
export interface PhasePlan {
  found: string
  steps: Step[]
  warnings: string[]
}

/** One phase of the pipeline: detect → plan → apply → verify. An unchanged host plans no step. */
export interface Phase<I, Facts, Plan extends PhasePlan> {
  readonly name: string
  /** Runs before the host lock is taken (it may wait long, and must not hold up other runs). */
  readonly beforeHostLock?: boolean
  /** Reads the host; changes nothing. */
  detect(ctx: PhaseContext<I>): Promise<Facts>
  /** Turns facts into steps; pure: the same facts give the same plan. */
  plan(facts: Facts, ctx: PlanContext<I>): Plan
  /** Reports what the plan already knows (outputs, log lines), dry run or not; changes nothing. */
  planned?(plan: Plan, ctx: PhaseContext<I>): void
  /**
   * In a dry run only: more changes the plan implies that a read-only probe can tell (apt's
   * simulation), added to the plan's list; changes nothing outside the job's temp folder.
   */
  preview?(plan: Plan, ctx: PhaseContext<I>): Promise<string[]>
  /** Carries out the plan (only called when it has steps and this is not a dry run). */
  apply(plan: Plan, ctx: PhaseContext<I>): Promise<void>
  /** Proves the result (after apply); returns what to show as the phase's final state. */
  verify(plan: Plan, ctx: PhaseContext<I>): Promise<string>
  /** Runs after apply, or when nothing needed changing (never in a dry run): checks that prove the state. */
  check?(plan: Plan, ctx: PhaseContext<I>, changed: boolean): Promise<void>
}

/** One row of the summary. */
export interface PhaseReport {
  phase: string
  status: 'unchanged' | 'changed' | 'would change' | 'failed'
  /** What the phase showed (ctx.show); empty when it showed nothing, and then `found` or `result` stand in. */
  facts: Fact[]
  found: string
  changes: string[]
  result: string
}

/** A phase's context before the pipeline binds `show` to the phase's own report. */
export type UnboundContext<I> = Omit<PhaseContext<I>, 'show'>

/** A phase bound to the context it runs in, ready for the pipeline. */
export interface Stage {
  readonly name: string
  /** Runs before the host lock is taken. */
  readonly beforeHostLock?: boolean
  run(dryRun: boolean, report: PhaseReport): Promise<void>
}

/** Binds a phase to its context (its own inputs, the host, the runner). */
export function stage<I, F, P extends PhasePlan>(
  phase: Phase<I, F, P>,
  unbound: UnboundContext<I>
): Stage {
  return {
    name: phase.name,
    beforeHostLock: phase.beforeHostLock === true,
    run: async (dryRun, report) => {
      const ctx: PhaseContext<I> = {
        ...unbound,
        show: facts => {
          report.facts = [...facts]
        }
      }
      await runPhase(phase, ctx, dryRun, report)
    }
  }
}

async function runPhase<I, F, P extends PhasePlan>(
  phase: Phase<I, F, P>,
  ctx: PhaseContext<I>,
  dryRun: boolean,
  report: PhaseReport
): Promise<void> {
  const facts = await phase.detect(ctx)
  const plan = phase.plan(facts, {inputs: ctx.inputs, host: ctx.host})
  for (const w of plan.warnings) ctx.warn(w)
  phase.planned?.(plan, ctx)
  report.found = plan.found
  report.changes = plan.steps.map(s => s.description)
  core.info(`Found: ${plan.found}`)
  if (plan.steps.length === 0) {
    core.info('Nothing to change.')
    if (!dryRun) await phase.check?.(plan, ctx, false)
    report.status = 'unchanged'
    report.result = plan.found
    return
  }
  if (dryRun) report.changes.push(...((await phase.preview?.(plan, ctx)) ?? []))
  core.info(`${dryRun ? 'Would change' : 'Plan'}:`)
  for (const change of report.changes) core.info(`  - ${change}`)
  if (dryRun) {
    report.status = 'would change'
    report.result = 'dry run: nothing changed'
    return
  }
  await phase.apply(plan, ctx)
  report.result = await phase.verify(plan, ctx)
  await phase.check?.(plan, ctx, true)
  report.status = 'changed'
  core.info(`Result: ${report.result}`)
}

/** Runs the stages in order, each in a log group, adding a report row per phase reached. */
export async function runPipeline(
  stages: readonly Stage[],
  dryRun: boolean,
  reports: PhaseReport[]
): Promise<void> {
  for (const s of stages) {
    await core.group(s.name, async () => {
      const report: PhaseReport = {
        phase: s.name,
        status: 'failed',
        facts: [],
        found: '',
        changes: [],
        result: ''
      }
      reports.push(report)
      await s.run(dryRun, report)
    })
  }
}
