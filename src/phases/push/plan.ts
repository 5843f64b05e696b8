/** The push phase's plan (pure): which targets to push, which the registry already holds. */
import {HostError} from '../../errors.js'
import type {PhasePlan, Step} from '../pipeline.js'
import type {PushTarget} from './image-list.js'
import type {PushSettings} from './inputs.js'
import {repoDigest, type PushResult} from './push-result.js'

/** A local image as `docker image inspect` shows it. */
export interface LocalImage {
  id: string
  repoDigests: string[]
  size: number
}

/** What detection found. */
export interface PushFacts {
  /** Docker answered (a dry run on a host without it yet cannot look at images). */
  dockerUp: boolean
  targets: PushTarget[]
  locals: Map<string, LocalImage>
  /** Digest the registry holds for each target that may be unchanged. */
  remote: Map<string, string | undefined>
}

/** The push phase's plan: log in or not, what to push, what is already there. */
export interface PushPlan extends PhasePlan {
  facts: PushFacts
  login: boolean
  todo: PushTarget[]
  unchanged: PushResult[]
}

/** Every source must be on the host before the first push: a missing one fails the phase at once. */
function refuseMissingSources(facts: PushFacts): void {
  const missing = facts.targets.filter(t => !facts.locals.has(t.source))
  const sources = [...new Map(missing.map(t => [t.source, t])).values()]
  if (sources.length === 0) return
  const one = sources.length === 1
  throw new HostError(
    `images: ${sources.map(t => `${t.source} (line ${t.line})`).join(', ')} ${one ? 'is' : 'are'} not on this host; nothing was pushed. Build or pull ${one ? 'it' : 'them'} before this step.`
  )
}

/** A target is unchanged when the registry holds, for its tag, the digest the local image has there. */
function splitUnchanged(facts: PushFacts): {todo: PushTarget[]; unchanged: PushResult[]} {
  const todo: PushTarget[] = []
  const unchanged: PushResult[] = []
  for (const t of facts.targets) {
    const local = facts.locals.get(t.source)
    const held = facts.remote.get(t.target)
    const mine = local ? repoDigest(local.repoDigests, t) : undefined
    if (local && held !== undefined && held === mine) {
      unchanged.push({
        source: t.source,
        target: t.target,
        digest: held,
        size: local.size,
        status: 'unchanged'
      })
    } else todo.push(t)
  }
  return {todo, unchanged}
}

/**
 * Plans the push phase (pure): a login when credentials are given and something is to be pushed,
 * then one push per target the registry does not already hold. Throws HostError for a missing source.
 */
export function planPush(
  facts: PushFacts,
  inputs: Pick<PushSettings, 'login' | 'registry'>
): PushPlan {
  const base = {facts, login: false, todo: [], unchanged: [], warnings: []}
  if (facts.targets.length === 0) {
    return {...base, found: 'no images to push (images is empty)', steps: []}
  }
  if (!facts.dockerUp) {
    const steps = facts.targets.map(t => ({description: `push ${t.source} as ${t.target}`}))
    return {...base, found: 'Docker is not running yet', steps}
  }
  refuseMissingSources(facts)
  const {todo, unchanged} = splitUnchanged(facts)
  const login = inputs.login !== undefined && todo.length > 0
  const steps: Step[] = [
    ...(login
      ? [
          {
            description: `log in to ${inputs.registry.text} as ${inputs.login?.username} (per-job DOCKER_CONFIG)`
          }
        ]
      : []),
    ...todo.map(t => ({description: `push ${t.source} as ${t.target}`}))
  ]
  return {
    ...base,
    login,
    todo,
    unchanged,
    steps,
    found: `${facts.targets.length} target(s); ${unchanged.length} already in the registry with the same digest`
  }
}
