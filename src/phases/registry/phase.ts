/** The registry phase bound together: detect, plan, apply, verify and check. */
import type {Phase} from '../pipeline.js'
import {applyRegistry, checkRegistry, verifyRegistry} from './apply.js'
import {detectRegistry} from './detect.js'
import type {RegistrySettings} from './inputs.js'
import {planRegistry, type RegistryFacts, type RegistryPlan} from './plan.js'

/**
 * Registry phase: the CNCF distribution registry as a container that survives restarts (restart
 * always, data on the host), reused when its spec is unchanged, with optional auth, TLS and a
 * pull-through mirror of Docker Hub; and a pull-through cache of each registry-caches upstream.
 */
export const registryPhase: Phase<RegistrySettings, RegistryFacts, RegistryPlan> = {
  name: 'Local registry',
  detect: detectRegistry,
  plan: (facts, {inputs}) => planRegistry(facts, inputs),
  planned: (plan, ctx) => {
    // Detection showed this step's own settings; a registry kept as it is has its own.
    if (plan.kept !== undefined) {
      ctx.show([
        {label: 'registry', value: ctx.inputs.registry.text, note: `kept as it is: ${plan.kept}`}
      ])
    }
  },
  apply: applyRegistry,
  verify: verifyRegistry,
  check: checkRegistry
}
