import type {Phase, PhasePlan, RunContext} from './pipeline.js'

/**
 * Phases whose work this version does not do yet. They keep the pipeline's shape (and the summary's
 * rows) and say plainly when an input asks for something they would do, instead of ignoring it.
 */
function pending(
  name: string,
  asked: (ctx: RunContext) => string | undefined
): Phase<undefined, PhasePlan> {
  return {
    name,
    detect: () => Promise.resolve(undefined),
    plan(_facts, ctx) {
      const what = asked(ctx)
      if (what)
        ctx.warn(
          `${name}: ${what} is not handled by this version of docker-gpu-setup yet; nothing was done for it.`
        )
      return {found: 'not managed by this version', steps: []}
    },
    apply: () => Promise.resolve(),
    verify: () => Promise.resolve('')
  }
}

export const pushPhase = pending('Push images', ({inputs}) =>
  inputs.images.length > 0 ? 'images' : undefined
)
