/** The daemon phase bound together: detect, plan, apply, verify, then the secrets closed and the GPU check. */
import * as core from '@actions/core'
import type {Phase} from '../pipeline.js'
import {closeSecrets} from './activate.js'
import {applyDaemon, verifyDaemon} from './apply.js'
import {detectDaemon} from './detect.js'
import {daemonFacts} from './facts.js'
import {checkGpus} from './gpu-check.js'
import type {DaemonSettings} from './inputs.js'
import {DAEMON_JSON, planDaemon, type DaemonFacts, type DaemonPlan} from './plan.js'

/**
 * Daemon config phase: the NVIDIA toolkit when the runtime is wanted, then the one writer of
 * /etc/docker/daemon.json (merged fragments, validated, backed up), one restart, rollback on failure.
 */
export const daemonPhase: Phase<DaemonSettings, DaemonFacts, DaemonPlan> = {
  name: 'Daemon config and NVIDIA runtime',
  detect: detectDaemon,
  plan: (facts, {inputs}) => planDaemon(facts, inputs),
  planned(plan, ctx) {
    if (plan.diff.length > 0) core.info(`${DAEMON_JSON} would change:\n  ${plan.diff.join('\n  ')}`)
    const fix = plan.deviceFix
    ctx.outputs.gpuDeviceFix = fix?.fix
    if (fix) {
      core.info(`GPU device fix: ${fix.fix} (${fix.why})`)
      ctx.show(daemonFacts({...plan.shown, deviceFix: fix}))
    }
  },
  apply: applyDaemon,
  verify: verifyDaemon,
  async check(plan, ctx, changed) {
    await closeSecrets(ctx)
    await checkGpus(plan, ctx, changed)
  }
}
