/** Runner hooks phase: installs or removes the runner's job hooks (root-owned scripts, its .env). */
import type {Phase} from '../pipeline.js'
import {applyHooks, verifyHooks} from './apply.js'
import {detectHooks} from './detect.js'
import type {HookSettings} from './inputs.js'
import {planHooks, type HookFacts, type HookPlan} from './plan.js'

/**
 * Runner hooks phase: with runner-hooks: install, every job of this runner leases (and tears down)
 * through the runner's job-started and job-completed hooks, `container:` jobs included.
 */
export const hooksPhase: Phase<HookSettings, HookFacts, HookPlan> = {
  name: 'Runner job hooks',
  detect: detectHooks,
  plan: (facts, {inputs}) => planHooks(facts, inputs),
  apply: applyHooks,
  verify: verifyHooks
}
