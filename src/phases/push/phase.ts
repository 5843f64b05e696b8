/** The push phase bound together: detect, plan, apply and verify, and what the summary shows before and after. */
import type {Phase} from '../pipeline.js'
import {applyPush, verifyPush} from './apply.js'
import {detectPush} from './detect.js'
import {compressionFacts, plannedPushFacts, pushFacts} from './facts.js'
import type {PushSettings} from './inputs.js'
import {planPush, type PushFacts, type PushPlan} from './plan.js'

/** Push phase: tags and pushes the job's images with retries, and verifies each digest in the registry. */
export const pushPhase: Phase<PushSettings, PushFacts, PushPlan> = {
  name: 'Push images',
  detect: detectPush,
  plan: (facts, {inputs}) => planPush(facts, inputs),
  planned(plan, ctx) {
    // What the registry already holds is an output even when nothing is pushed, or in a dry run.
    if (plan.facts.dockerUp) ctx.outputs.images = plan.unchanged
    const toPush = plan.facts.dockerUp ? plan.todo.length : plan.facts.targets.length
    // With nothing to push the plan is already the result; otherwise apply counts what landed.
    ctx.show([
      ...(toPush === 0
        ? pushFacts(ctx.outputs.images ?? [])
        : plannedPushFacts(toPush, plan.unchanged.length)),
      ...compressionFacts(plan.compression)
    ])
  },
  async apply(plan, ctx) {
    try {
      await applyPush(plan, ctx)
    } finally {
      // Counted whether every push landed or not: the failures are what a person looks for first.
      ctx.show([...pushFacts(ctx.outputs.images ?? []), ...compressionFacts(plan.compression)])
    }
  },
  verify: verifyPush
}
