/** GPU health phase: the gate before any GPU is leased or checked; sets the gpu-health output. */
import * as core from '@actions/core'
import {HostError} from '../../errors.js'
import type {Fact, Phase, PhasePlan} from '../pipeline.js'
import {
  assessHealth,
  gpuProblemText,
  healthOutput,
  operatorLine,
  type HealthMode,
  type HealthReport
} from './health.js'
import {lossFixText, type DeviceLossFix, type DeviceLossVerdict} from '../../models/device-loss.js'
import {detectGpuHealth, type GpuHealthFacts} from './health-detect.js'
import type {GpuHealthInputs} from './health-inputs.js'

/** The gate's plan: its verdict (none when it did not run); it never changes the host. */
export interface GpuHealthPlan extends PhasePlan {
  mode: HealthMode
  report?: HealthReport
  /** Whether running containers lose their GPUs on daemon-reload here. */
  loss?: DeviceLossVerdict
}

/** The verdict and what it means for this run (pure). */
export function planGpuHealth(facts: GpuHealthFacts, inputs: GpuHealthInputs): GpuHealthPlan {
  if ('skipped' in facts) return {found: facts.skipped, steps: [], warnings: [], mode: inputs.mode}
  const report = assessHealth(facts.facts)
  const healthy = report.gpus.filter(g => g.healthy).length
  const bad = report.gpus.filter(g => !g.healthy)
  const verb = inputs.mode === 'fail' ? 'kept from this job' : 'used anyway (gpu-health: warn)'
  const loss = facts.facts.deviceLoss
  const warnings = [
    ...report.host.map(h => `gpu-health: ${h}`),
    ...bad.map(g => `gpu-health: ${gpuProblemText(g)}; ${verb}.`),
    ...(loss?.atRisk && loss.fix && !loss.applied
      ? [
          `gpu-health: running containers lose their GPUs on systemctl daemon-reload (${loss.why}): ${lossFixText(loss.fix)}.`
        ]
      : [])
  ]
  const found =
    report.gpus.length === 0 && report.host.length > 0
      ? 'NVML does not answer'
      : `${healthy} of ${report.gpus.length} GPU${report.gpus.length === 1 ? '' : 's'} healthy`
  return {found, steps: [], warnings, mode: inputs.mode, report, loss}
}

/** What the fix in place protects, and what it does not. */
function appliedText(fix: DeviceLossFix | undefined): string {
  const how =
    fix === 'cdi'
      ? '--device nvidia.com/gpu=<uuid> (the cdi-devices output)'
      : 'the /dev/nvidia* nodes with --device'
  return `containers given GPUs with ${how} keep them across systemctl daemon-reload; a container given them with --gpus alone does not.`
}

function facts(plan: GpuHealthPlan): Fact[] {
  const r = plan.report
  if (!r) return [{label: 'health gate', value: null, note: plan.found}]
  const bad = r.gpus.filter(g => !g.healthy)
  return [
    {label: 'healthy GPUs', value: r.gpus.filter(g => g.healthy).length},
    ...(bad.length > 0
      ? [{label: 'unhealthy', value: bad.map(g => `${g.index} ${g.uuid}`)} as Fact]
      : []),
    ...(r.host.length > 0 ? [{label: 'host problems', value: r.host.length} as Fact] : [])
  ]
}

/**
 * GPU health gate: before any GPU is leased or checked, judges every GPU (NVML answering with the
 * loaded module's version, fatal Xids since the driver loaded, ECC and remapping state, fields the
 * driver cannot read, leftover processes of ended jobs, the expected count). Records the verdict in
 * the `gpu-health` output, where the lease and the GPU check read it. With gpu-health: fail, a host
 * whose driver does not answer, that misses a GPU, or has no healthy GPU fails with one line.
 */
export const gpuHealthPhase: Phase<GpuHealthInputs, GpuHealthFacts, GpuHealthPlan> = {
  name: 'GPU health',
  beforeHostLock: true,
  detect: detectGpuHealth,
  plan: (f, {inputs}) => planGpuHealth(f, inputs),
  planned(plan, ctx) {
    ctx.show(facts(plan))
    if (!plan.report) return
    ctx.outputs.gpuHealth = {enforced: plan.mode === 'fail', gpus: healthOutput(plan.report)}
    for (const n of plan.report.notes) core.info(`gpu-health: ${n}`)
    const loss = plan.loss
    if (loss?.atRisk && loss.applied) core.info(`gpu-health: ${appliedText(loss.fix)}`)
  },
  apply: () => Promise.resolve(),
  verify: plan => Promise.resolve(plan.found),
  check(plan) {
    const r = plan.report
    if (plan.mode !== 'fail' || !r) return Promise.resolve()
    if (r.host.length > 0 || r.gpus.every(g => !g.healthy)) {
      return Promise.reject(new HostError(operatorLine(r)))
    }
    return Promise.resolve()
  }
}
