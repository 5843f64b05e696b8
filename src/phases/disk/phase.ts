/** The disk phase bound together: detect, plan, apply, verify and the free-space check. */
import type {Phase} from '../pipeline.js'
import {applyDisk, checkDisk, verifyDisk} from './apply.js'
import {detectDisk} from './detect.js'
import type {DiskSettings} from './inputs.js'
import {planDisk, type DiskFacts, type DiskPlan} from './plan.js'

/**
 * Disk phase: guarantees min-free-space on Docker's data root before the job, freeing only what
 * the pruning rules allow, under the host lock (never while another run changes the host).
 */
export const diskPhase: Phase<DiskSettings, DiskFacts, DiskPlan> = {
  name: 'Disk space',
  detect: detectDisk,
  plan: (facts, {inputs}) => planDisk(facts, inputs),
  apply: applyDisk,
  verify: verifyDisk,
  check: (plan, ctx) => checkDisk(plan, ctx)
}
