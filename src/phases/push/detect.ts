/**
 * Detects what the push needs (reads only): the daemon's image store and registry settings, the
 * local images, and what the registry holds for each target's tag.
 */
import * as core from '@actions/core'
import {errorMessage} from '../../errors.js'
import type {CommandRunner} from '../../exec/runner.js'
import {openEngineApi, type EngineApi} from '../../system/engine-api.js'
import type {PushTarget} from './image-list.js'
import type {LocalImage, PushFacts, RemoteImage} from './plan.js'
import {RegistryPool} from './registries.js'
import type {PushContext} from './strategy.js'
import {
  DEFAULT_REGISTRY_CONFIG,
  parseRegistryConfig,
  type DaemonProxies,
  type DaemonRegistryConfig
} from '../../registry-client/transport.js'

/** What `GET /images/{name}/json` and `docker image inspect` say, as far as pushing needs it. */
interface Inspected {
  Id: string
  RepoDigests: string[] | null
  Size: number
  RootFS?: {Layers?: string[] | null}
}

function localImage(i: Inspected): LocalImage {
  return {id: i.Id, repoDigests: i.RepoDigests ?? [], size: i.Size, layers: i.RootFS?.Layers ?? []}
}

async function inspectLocal(
  runner: CommandRunner,
  api: EngineApi | undefined,
  source: string
): Promise<LocalImage | undefined> {
  if (api) {
    const i = await api.json<Inspected>(`/images/${source}/json`)
    return i ? localImage(i) : undefined
  }
  const r = await runner.run(
    [
      'docker',
      'image',
      'inspect',
      '--format',
      '{{.Id}}\t{{json .RepoDigests}}\t{{.Size}}\t{{json .RootFS.Layers}}',
      source
    ],
    {root: true, allowFailure: true}
  )
  if (r.exitCode !== 0) return undefined
  const [id, digests, size, layers] = r.stdout.trim().split('\t')
  return localImage({
    Id: id,
    RepoDigests: JSON.parse(digests) as string[] | null,
    Size: Number(size),
    RootFS: {Layers: JSON.parse(layers) as string[] | null}
  })
}

interface DaemonFacts {
  containerdStore: boolean
  registryConfig: DaemonRegistryConfig
}

function daemonFromInfo(
  driverStatus: string,
  registry: string,
  proxies: DaemonProxies
): DaemonFacts {
  const config = registry ? parseRegistryConfig(registry) : DEFAULT_REGISTRY_CONFIG
  return {
    // Docker names the containerd image store in its driver status.
    containerdStore: driverStatus.includes('io.containerd.snapshotter'),
    registryConfig: {...config, proxies}
  }
}

/** The daemon's image store and registry settings; undefined when Docker does not answer. */
async function daemonFacts(
  runner: CommandRunner,
  api: EngineApi | undefined
): Promise<DaemonFacts | undefined> {
  if (api) {
    const info = await api
      .json<{
        DriverStatus?: unknown
        RegistryConfig?: unknown
        HTTPProxy?: string
        HTTPSProxy?: string
        NoProxy?: string
      }>('/info')
      .catch(() => undefined)
    if (info) {
      return daemonFromInfo(
        JSON.stringify(info.DriverStatus ?? []),
        JSON.stringify(info.RegistryConfig ?? null),
        {http: info.HTTPProxy ?? '', https: info.HTTPSProxy ?? '', noProxy: info.NoProxy ?? ''}
      )
    }
  }
  const r = await runner.run(
    [
      'docker',
      'info',
      '--format',
      '{{json .DriverStatus}}\t{{json .RegistryConfig}}\t{{.HTTPProxy}}\t{{.HTTPSProxy}}\t{{.NoProxy}}'
    ],
    {root: true, allowFailure: true, timeoutSeconds: 10}
  )
  if (r.exitCode !== 0) return undefined
  const [status, registry, http = '', https = '', noProxy = ''] = r.stdout
    .replace(/\n$/, '')
    .split('\t')
  return daemonFromInfo(status, registry, {http, https, noProxy})
}

async function readRemote(pool: RegistryPool, t: PushTarget): Promise<RemoteImage | undefined> {
  try {
    return await (await pool.client(t.registry)).image(t.repository, t.tag)
  } catch (e) {
    core.debug(`Could not read ${t.target} from its registry: ${errorMessage(e)}`)
    return undefined
  }
}

/**
 * Reads the daemon's image store and registry settings, the local images, and what the registry
 * holds for each target's tag (HTTP, as the daemon would reach it); changes nothing.
 */
export async function detectPush(ctx: PushContext): Promise<PushFacts> {
  const {inputs, runner} = ctx
  const targets = inputs.images
  const locals = new Map<string, LocalImage>()
  const remote = new Map<string, RemoteImage | undefined>()
  // The daemon's socket when this process may open it (no docker process per question).
  const api = targets.length > 0 ? await openEngineApi(ctx.host.dockerSocket) : undefined
  const daemon = targets.length > 0 ? await daemonFacts(runner, api) : undefined
  const registryConfig = daemon?.registryConfig ?? DEFAULT_REGISTRY_CONFIG
  const facts: PushFacts = {
    dockerUp: daemon !== undefined,
    containerdStore: daemon?.containerdStore ?? false,
    registryConfig,
    targets,
    locals,
    remote,
    registries: new RegistryPool(inputs, registryConfig, runner, ctx.host),
    engine: api
  }
  if (!daemon) return facts
  const sources = [...new Set(targets.map(t => t.source))]
  const images = await Promise.all(sources.map(async s => inspectLocal(runner, api, s)))
  sources.forEach((s, i) => {
    const image = images[i]
    if (image) locals.set(s, image)
  })
  const held = await Promise.all(
    targets.map(async t => (locals.has(t.source) ? readRemote(facts.registries, t) : undefined))
  )
  targets.forEach((t, i) => remote.set(t.target, held[i]))
  return facts
}
