/** The push phase's plan (pure): which targets to push, which the registry already holds. */
import {HostError} from '../../errors.js'
import type {PhasePlan, Step} from '../pipeline.js'
import type {PushTarget} from './image-list.js'
import {isLoopbackHost, parseRegistryAddress} from '../../docker/reference.js'
import type {PushSettings} from './inputs.js'
import type {DaemonRegistryConfig} from '../../registry-client/transport.js'
import {repoDigest, type PushResult} from './push-result.js'
import type {RemoteImage} from '../../registry-client/manifest.js'
import type {EngineApi} from '../../system/engine-api.js'
import type {RegistryPool} from './registries.js'

export type {RemoteImage} from '../../registry-client/manifest.js'

/** A local image as `docker image inspect` shows it. */
export interface LocalImage {
  /** The config's digest in the classic image store; the manifest's (or index's) in containerd's. */
  id: string
  repoDigests: string[]
  size: number
  /** Uncompressed layer digests (diff_ids), base first. */
  layers: string[]
}

/** What detection found. */
export interface PushFacts {
  /** Docker answered (a dry run on a host without it yet cannot look at images). */
  dockerUp: boolean
  /** The daemon keeps images in the containerd image store. */
  containerdStore: boolean
  /** The daemon's registry settings (insecure registries), as `docker info` shows them. */
  registryConfig: DaemonRegistryConfig
  targets: PushTarget[]
  locals: Map<string, LocalImage>
  /** What the registry holds for each target's tag; undefined when nothing (or unreadable). */
  remote: Map<string, RemoteImage | undefined>
  /** The run's registry clients, opened by detection, used again by the pushes. */
  registries: RegistryPool
  /** The daemon's socket, when this process may open it: asked by detection, and by the pushes. */
  engine?: EngineApi
}

/** How the plan's pushes are made: the registry's HTTP API, or `docker push`. */
export type PushWay = 'registry-api' | 'docker-push'

/** How layers travel to one registry, and why (for the summary). */
export interface LayerCompression {
  registry: string
  compression: 'gzip' | 'none'
  why: string
}

/** The push phase's plan: log in or not, what to push and how, what is already there. */
export interface PushPlan extends PhasePlan {
  facts: PushFacts
  login: boolean
  way: PushWay
  todo: PushTarget[]
  unchanged: PushResult[]
  /** Per registry the registry API sends layers to (none through docker push). */
  compression: LayerCompression[]
}

/** How the log and the summary name a compression. */
export const COMPRESSION_WORDS = {none: 'uncompressed', gzip: 'gzip'} as const

type CompressionInputs = Pick<PushSettings, 'pushCompression' | 'registry' | 'registryLocal'>

/**
 * How the registry API sends layers to `registry` (pure). `auto`: uncompressed to a registry on
 * this host (a loopback address, or the one this run runs), where gzip costs the most time of the
 * push and saves nothing on the wire, and whose pulls (on this host, Docker 20.10 and later) take
 * uncompressed OCI layers; gzip to any other, whose layers cross a network.
 */
export function layerCompression(registry: string, inputs: CompressionInputs): LayerCompression {
  if (inputs.pushCompression !== 'auto') {
    return {registry, compression: inputs.pushCompression, why: 'as push-compression says'}
  }
  if (isLoopbackHost(parseRegistryAddress(registry).host)) {
    return {registry, compression: 'none', why: 'a registry on this host, on loopback'}
  }
  if (inputs.registryLocal && registry === inputs.registry.text) {
    return {registry, compression: 'none', why: 'the registry this run runs on this host'}
  }
  return {registry, compression: 'gzip', why: 'a registry elsewhere: its layers cross a network'}
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

/**
 * Whether the registry holds this image for the tag: the same config (the classic store's image
 * ID), the same manifest (the containerd store's ID), or the digest an earlier docker push recorded.
 */
export function sameImage(local: LocalImage, remote: RemoteImage, t: PushTarget): boolean {
  return (
    remote.config === local.id ||
    remote.digest === local.id ||
    repoDigest(local.repoDigests, t) === remote.digest
  )
}

/** Splits the targets into those to push and those the registry already holds. */
function splitUnchanged(facts: PushFacts): {todo: PushTarget[]; unchanged: PushResult[]} {
  const todo: PushTarget[] = []
  const unchanged: PushResult[] = []
  for (const t of facts.targets) {
    const local = facts.locals.get(t.source)
    const held = facts.remote.get(t.target)
    if (local && held && sameImage(local, held, t)) {
      unchanged.push({
        source: t.source,
        target: t.target,
        digest: held.digest,
        size: held.bytes,
        status: 'unchanged'
      })
    } else todo.push(t)
  }
  return {todo, unchanged}
}

/** The registry's API for the classic image store; docker push when asked, or for containerd's. */
function wayOf(facts: PushFacts, inputs: Pick<PushSettings, 'pushMethod'>): PushWay {
  return inputs.pushMethod === 'docker' || facts.containerdStore ? 'docker-push' : 'registry-api'
}

/**
 * Plans the push phase (pure): a login when credentials are given and something is to be pushed,
 * then one push per target the registry does not already hold. Throws HostError for a missing source.
 */
export function planPush(
  facts: PushFacts,
  inputs: Pick<PushSettings, 'login' | 'pushMethod'> & CompressionInputs
): PushPlan {
  const way = wayOf(facts, inputs)
  const base = {facts, login: false, way, todo: [], unchanged: [], compression: [], warnings: []}
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
  const registries = [...new Set(todo.map(t => t.registry))]
  const compression = way === 'registry-api' ? registries.map(r => layerCompression(r, inputs)) : []
  const warnings =
    way === 'docker-push' && inputs.pushCompression === 'none' && todo.length > 0
      ? [
          'push-compression: none is not possible here: images in the containerd image store go by docker push, which sends layers compressed as they are stored'
        ]
      : []
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
    compression,
    warnings,
    steps,
    found:
      `${facts.targets.length} target(s); ${unchanged.length} already in the registry with the same image` +
      (todo.length > 0
        ? `; sent ${way === 'docker-push' ? 'by docker push' : 'through the registry API'}`
        : '')
  }
}
