/** The GPU lease phase bound together: it runs before the host lock, and republishes leases the job already held. */
import type {Phase} from '../pipeline.js'
import {applyGpus, publishLeases, verifyGpus} from './apply.js'
import {detectGpus} from './detect.js'
import type {GpuSettings} from './inputs.js'
import {planGpus, type GpuFacts, type GpuPlan} from './plan.js'

/**
 * GPU lease phase: gives the job the GPUs `gpus` asks for, one lease file per GPU, held until its
 * post step. It runs before the host lock is taken: a job waiting for GPUs must not stop other
 * jobs from setting up, or from releasing theirs.
 */
export const gpuPhase: Phase<GpuSettings, GpuFacts, GpuPlan> = {
  name: 'GPU leases',
  beforeHostLock: true,
  detect: detectGpus,
  plan: (facts, {inputs}) => planGpus(facts, inputs),
  apply: applyGpus,
  verify: verifyGpus,
  check: (plan, ctx, changed) => {
    // GPUs the job already held (an earlier step) change nothing, and are still this step's outputs.
    if (!changed && plan.wanted) publishLeases(ctx, plan.picks, plan.facts.cdi)
    return Promise.resolve()
  }
}
