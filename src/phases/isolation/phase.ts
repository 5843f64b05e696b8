/**
 * GPU isolation phase: gpu-isolation: strict sets the toolkit's config.toml so that unprivileged
 * containers' NVIDIA_VISIBLE_DEVICES no longer counts (the lease arrives as volume mounts); off
 * puts back what strict changed; keep (the default) changes nothing. The one writer of config.toml and of its record.
 */
import {HostError} from '../../errors.js'
import {NVIDIA_CTK} from '../../models/device-loss.js'
import {readFileMaybe, removeFile, writeFileAtomic} from '../../system/files.js'
import type {Phase, PhaseContext, PhasePlan} from '../pipeline.js'
import type {IsolationInputs} from './inputs.js'
import {
  ISOLATION_RECORD,
  TOOLKIT_CONFIG,
  ctkCanSet,
  ctkSetArgv,
  ctkVersion,
  keyValues,
  parseRecord,
  planIsolation,
  withKey,
  type IsolationChange,
  type IsolationFacts,
  type StrictKey
} from './toolkit-config.js'

/** The plan: the change, on top of what was found. */
export interface IsolationPlan extends PhasePlan {
  facts: IsolationFacts
  change: IsolationChange
}

type Ctx = PhaseContext<IsolationInputs>

/** Reads the record, and config.toml only where a change may follow (a plain off run reads one path). */
async function detectIsolation(ctx: Ctx): Promise<IsolationFacts> {
  const record = parseRecord(await readFileMaybe(ctx.runner, ISOLATION_RECORD))
  if (ctx.inputs.gpuIsolation === 'keep') return {record}
  if (ctx.inputs.gpuIsolation === 'off' && record === undefined) return {}
  return {text: await readFileMaybe(ctx.runner, TOOLKIT_CONFIG), record}
}

/** The plan (pure); strict without the toolkit's config file is refused before any change. */
function planIsolationPhase(facts: IsolationFacts, inputs: IsolationInputs): IsolationPlan {
  const mode = inputs.gpuIsolation
  if (mode === 'strict' && facts.text === undefined) {
    throw new HostError(
      `gpu-isolation: strict needs the NVIDIA container toolkit's ${TOOLKIT_CONFIG}, which is not there. Install the toolkit (gpu-runtime: nvidia) and run again.`
    )
  }
  const change = planIsolation(mode, facts)
  const steps = Object.entries(change.set).map(([k, v]) => ({
    description:
      v === null ? `take ${k} out of ${TOOLKIT_CONFIG}` : `set ${k} = ${v} in ${TOOLKIT_CONFIG}`
  }))
  if (change.record === null) steps.push({description: `remove ${ISOLATION_RECORD}`})
  return {
    found: `gpu-isolation ${mode}`,
    steps,
    warnings: change.kept.map(k => `gpu-isolation: off left ${TOOLKIT_CONFIG}: ${k}.`),
    facts,
    change
  }
}

/**
 * Sets keys in TOOLKIT_CONFIG: through nvidia-ctk where it can (1.14+), else by editing the file;
 * a key to take out (null) always by editing the file.
 */
export async function writeKeys(ctx: Ctx, set: IsolationChange['set']): Promise<void> {
  const values = Object.fromEntries(Object.entries(set).filter(([, v]) => v !== null)) as Partial<
    Record<StrictKey, boolean>
  >
  const removed = Object.keys(set).filter(k => set[k as StrictKey] === null) as StrictKey[]
  // Not installed (an older toolkit, or none): the file is edited as the toolkit documents it.
  const probe = await ctx.runner
    .run([NVIDIA_CTK, '--version'], {allowFailure: true})
    .catch(() => undefined)
  if (
    Object.keys(values).length > 0 &&
    probe?.exitCode === 0 &&
    ctkCanSet(ctkVersion(probe.stdout))
  ) {
    await ctx.runner.run(ctkSetArgv(TOOLKIT_CONFIG, values), {root: true})
  } else {
    removed.push(...(Object.keys(values) as StrictKey[]))
  }
  if (removed.length === 0) return
  // The rest by hand, every other line kept (a key is one `key = value` line above the tables).
  let text = (await readFileMaybe(ctx.runner, TOOLKIT_CONFIG)) ?? ''
  for (const k of removed) text = withKey(text, k, set[k] ?? null)
  await writeFileAtomic(ctx.runner, TOOLKIT_CONFIG, text, 0o644, ctx.host.tempDir)
}

/** Records what strict changes first (so off can put it back after a failure), then writes. */
async function applyIsolation(plan: IsolationPlan, ctx: Ctx): Promise<void> {
  const {change} = plan
  if (change.record) {
    const text = `${JSON.stringify(change.record)}\n`
    await writeFileAtomic(ctx.runner, ISOLATION_RECORD, text, 0o644, ctx.host.tempDir)
  }
  if (Object.keys(change.set).length > 0) await writeKeys(ctx, change.set)
  if (change.record === null) await removeFile(ctx.runner, ISOLATION_RECORD)
}

/** The output and the summary: the mode, and the keys as the file now has them. */
async function reportIsolation(plan: IsolationPlan, ctx: Ctx, changed: boolean): Promise<void> {
  const mode = ctx.inputs.gpuIsolation
  const text = changed ? await readFileMaybe(ctx.runner, TOOLKIT_CONFIG) : plan.facts.text
  const keys = text === undefined ? undefined : keyValues(text)
  ctx.outputs.gpuIsolation = {
    mode,
    config: TOOLKIT_CONFIG,
    changed: changed ? plan.change.set : {},
    ...(keys ? {keys} : {})
  }
  // keep: say whether an earlier strict is in force, from its record alone (no file read).
  const value =
    mode === 'keep'
      ? `keep (${plan.facts.record ? 'strict, set by an earlier run' : 'as installed'})`
      : mode
  ctx.show([
    {label: 'gpu-isolation', value},
    ...(keys
      ? Object.entries(keys).map(([k, v]) => ({
          label: k,
          value: v === null ? 'default' : String(v)
        }))
      : [])
  ])
}

/** GPU isolation: the toolkit's two keys, set by strict and put back by off. */
export const isolationPhase: Phase<IsolationInputs, IsolationFacts, IsolationPlan> = {
  name: 'GPU isolation',
  detect: detectIsolation,
  plan: (facts, {inputs}) => planIsolationPhase(facts, inputs),
  apply: applyIsolation,
  verify: async (plan, ctx) => {
    const text = (await readFileMaybe(ctx.runner, TOOLKIT_CONFIG)) ?? ''
    const now = keyValues(text)
    for (const [k, v] of Object.entries(plan.change.set)) {
      if (now[k as StrictKey] !== v) {
        throw new HostError(
          `${TOOLKIT_CONFIG}: ${k} is ${String(now[k as StrictKey])} after setting it to ${String(v)}.`
        )
      }
    }
    return `gpu-isolation ${ctx.inputs.gpuIsolation}`
  },
  check: (plan, ctx, changed) => reportIsolation(plan, ctx, changed)
}
