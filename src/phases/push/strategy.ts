/** What a push strategy is (types only): given the plan, a worker pool and the login's config, it pushes and returns one result per target. */
import type {PhaseContext} from '../pipeline.js'
import type {PushSettings} from './inputs.js'
import type {PushPlan} from './plan.js'
import type {PushResult} from './push-result.js'

export type PushContext = PhaseContext<PushSettings>

/**
 * Runs `work` over `items`, push-concurrency at a time, one failure not stopping the others;
 * `next` hears of the items that come after each one taken, as many as there are workers (to
 * begin their exports early: each worker then finds its next image's export under way).
 */
export type WorkerPool = <T>(
  items: T[],
  work: (item: T) => Promise<PushResult[]>,
  next?: (item: T) => void
) => Promise<PushResult[]>

/** One way of pushing the plan's targets (docker CLI, registry API). */
export type PushStrategy = (
  ctx: PushContext,
  p: PushPlan,
  pool: WorkerPool,
  config: string | undefined
) => Promise<PushResult[]>
