/** Reads the registry phase's facts: its containers and image, its files' hashes, and the ports others hold (/proc/net/tcp read directly). */
import {promises as fs} from 'node:fs'
import * as net from 'node:net'
import type {CommandRunner} from '../../exec/runner.js'
import {openEngineApi, type EngineApi} from '../../system/engine-api.js'
import {readFileMaybe} from '../../system/files.js'
import {parseListeners, portListened} from '../../system/proc-net.js'
import {probeDaemon} from '../../system/service.js'
import type {PhaseContext} from '../pipeline.js'
import {registryFacts} from './facts.js'
import {htpasswdMatches} from './htpasswd.js'
import type {RegistrySettings} from './inputs.js'
import {daemonCaPath, type FileHashes, type RegistryFacts} from './plan.js'
import {
  AUTH_FILE,
  MIRROR_CONTAINER,
  REGISTRY_CONTAINER,
  TLS_CERT,
  TLS_KEY,
  cacheNames,
  registryBind,
  registryPort,
  sha256,
  wantsLocalRegistry,
  type ContainerState
} from './spec.js'

type Ctx = PhaseContext<RegistrySettings>

/** What this phase reads of `docker inspect` (or the Engine API's, the same JSON) of a container. */
interface InspectedContainer {
  Id: string
  State: {Running: boolean}
  Config: {Labels: Record<string, string> | null}
  HostConfig: {PortBindings: Record<string, {HostPort: string}[] | null> | null}
}

/** `docker inspect` of a container by name (the Engine API when `api` is given); undefined when there is none. */
export async function inspectContainer(
  runner: CommandRunner,
  name: string,
  api?: EngineApi
): Promise<ContainerState | undefined> {
  const c = api
    ? await api.json<InspectedContainer>(`/containers/${name}/json`)
    : await runner
        .run(['docker', 'inspect', '--type', 'container', '--format', '{{json .}}', name], {
          root: true,
          allowFailure: true
        })
        .then(r => (r.exitCode === 0 ? (JSON.parse(r.stdout) as InspectedContainer) : undefined))
  if (!c) return undefined
  const port = c.HostConfig.PortBindings?.['5000/tcp']?.[0]?.HostPort
  return {
    id: c.Id,
    running: c.State.Running,
    labels: c.Config.Labels ?? {},
    hostPort: port ? Number(port) : undefined
  }
}

/** The local id of an image (`docker image inspect`); undefined when it is not on the host. */
export async function imageId(
  runner: CommandRunner,
  image: string,
  api?: EngineApi
): Promise<string | undefined> {
  if (api) return (await api.json<{Id: string}>(`/images/${image}/json`))?.Id
  const r = await runner.run(['docker', 'image', 'inspect', '--format', '{{.Id}}', image], {
    root: true,
    allowFailure: true
  })
  return r.exitCode === 0 ? r.stdout.trim() : undefined
}

/** Is a TCP socket listening on `port`, as the kernel's tables say (no privilege needed)? */
async function listened(port: number): Promise<boolean> {
  const tables = await Promise.all(
    ['/proc/net/tcp', '/proc/net/tcp6'].map(f => fs.readFile(f, 'utf8').catch(() => ''))
  )
  return tables.some(t => portListened(parseListeners(t), port))
}

/**
 * Undefined when `bind:port` is free; else what holds it (as `ss` names it). A trial listen
 * decides, except that a runner that is not root may not listen below 1024 at all: there the
 * kernel's socket tables say whether anything does.
 */
async function portHolder(ctx: Ctx, bind: string, port: number): Promise<string | undefined> {
  const trial = await new Promise<'free' | 'taken' | 'no-privilege'>(resolve => {
    const server = net.createServer()
    server.once('error', (e: NodeJS.ErrnoException) =>
      resolve(e.code === 'EACCES' ? 'no-privilege' : 'taken')
    )
    server.listen({host: bind, port, exclusive: true}, () => server.close(() => resolve('free')))
  })
  if (trial === 'free' || (trial === 'no-privilege' && !(await listened(port)))) return undefined
  const ss = await ctx.runner.run(['ss', '-ltnpH', `sport = :${port}`], {
    root: true,
    allowFailure: true
  })
  const users = /users:\(\((.*)\)\)/.exec(ss.stdout)?.[1]
  return users ? `process ${users}` : 'another process'
}

async function fileHash(path: string | undefined): Promise<string | undefined> {
  if (path === undefined) return undefined
  return sha256(await fs.readFile(path))
}

async function installedHash(ctx: Ctx, path: string): Promise<string | undefined> {
  const text = await readFileMaybe(ctx.runner, path)
  return text === undefined ? undefined : sha256(Buffer.from(text))
}

/** True when a file exists and users other than its owner may read or write it (stat: no root). */
async function isOpen(file: string): Promise<boolean> {
  return fs.stat(file).then(
    s => (s.mode & 0o077) !== 0,
    () => false
  )
}

/** Hashes of the registry's htpasswd (as installed) and TLS files (as given). */
export async function fileHashes(ctx: Ctx): Promise<FileHashes> {
  const {inputs} = ctx
  const htpasswd =
    inputs.registryHtpasswd.length > 0 ? await readFileMaybe(ctx.runner, AUTH_FILE) : undefined
  return {
    htpasswd: htpasswd === undefined ? undefined : sha256(htpasswd),
    cert: await fileHash(inputs.registryTls?.cert),
    key: await fileHash(inputs.registryTls?.key)
  }
}

/** The installed certificate, key and daemon CA are the files given (true without TLS). */
async function certInstalled(ctx: Ctx): Promise<boolean> {
  const tls = ctx.inputs.registryTls
  if (!tls) return true
  const cert = await fileHash(tls.cert)
  return (
    (await installedHash(ctx, TLS_CERT)) === cert &&
    (await installedHash(ctx, TLS_KEY)) === (await fileHash(tls.key)) &&
    (await installedHash(ctx, daemonCaPath(ctx.inputs))) === cert
  )
}

/** Which data folders exist: the registry's and its mirror's when it is wanted, each cache's. */
async function dataDirs(
  inputs: RegistrySettings,
  wanted: boolean
): Promise<Record<string, boolean>> {
  const dirs = [
    ...(wanted ? [inputs.registryData] : []),
    ...(wanted && inputs.registryMirror !== false ? [`${inputs.registryData}-mirror`] : []),
    ...inputs.registryCaches.map(c => cacheNames(inputs, c).data)
  ]
  const out: Record<string, boolean> = {}
  for (const d of dirs) {
    out[d] = await fs.stat(d).then(
      s => s.isDirectory(),
      () => false
    )
  }
  return out
}

/** A port our own running container publishes is ours; any other holder is named. */
async function portHolders(
  ctx: Ctx,
  wanted: boolean,
  containers: {
    registry?: ContainerState
    mirror?: ContainerState
    caches: Record<string, ContainerState | undefined>
  }
): Promise<Record<number, string | undefined>> {
  const {inputs} = ctx
  const ports: [ContainerState | undefined, string, number][] = []
  if (wanted) ports.push([containers.registry, registryBind(inputs), registryPort(inputs)])
  if (wanted && inputs.registryMirror !== false) {
    ports.push([containers.mirror, '127.0.0.1', inputs.registryMirrorPort])
  }
  for (const c of inputs.registryCaches) {
    ports.push([containers.caches[cacheNames(inputs, c).name], '127.0.0.1', c.port])
  }
  const holders: Record<number, string | undefined> = {}
  for (const [state, bind, port] of ports) {
    if (!state?.running || state.hostPort !== port)
      holders[port] = await portHolder(ctx, bind, port)
  }
  return holders
}

/** Each cache's container, by name (undefined: none of that name). */
async function cacheContainers(
  ctx: Ctx,
  dockerUp: boolean,
  api: EngineApi | undefined
): Promise<Record<string, ContainerState | undefined>> {
  const out: Record<string, ContainerState | undefined> = {}
  for (const c of ctx.inputs.registryCaches) {
    const {name} = cacheNames(ctx.inputs, c)
    out[name] = dockerUp ? await inspectContainer(ctx.runner, name, api) : undefined
  }
  return out
}

/**
 * Reads the registry's state: whether one is wanted here, its image, containers (the registry,
 * its mirror, the caches of registry-caches, which run whether or not it is wanted), files, data
 * folders and ports; changes nothing. Sets the registry outputs to what is there now.
 */
export async function detectRegistry(ctx: Ctx): Promise<RegistryFacts> {
  const {inputs, runner} = ctx
  const me = ctx.host.identity
  const wanted = wantsLocalRegistry(inputs, me)
  ctx.outputs.registry = inputs.registry.text
  ctx.outputs.registryStarted = false
  const none: RegistryFacts = {
    me,
    wanted,
    dockerUp: false,
    htpasswdOk: true,
    certOk: true,
    fileHashes: {},
    dataDirs: {},
    portHolders: {},
    caches: {}
  }
  if (!wanted && inputs.registryCaches.length === 0) {
    ctx.show(registryFacts(inputs, 'not wanted'))
    return none
  }
  // The daemon's socket when this process may open it: no docker process per question.
  const api = await openEngineApi(ctx.host.dockerSocket)
  const dockerUp = (await probeDaemon(runner, api)) !== undefined
  const auth = wanted && inputs.registryHtpasswd.length > 0
  const [id, registry, mirror, htpasswd, certOk, caches] = await Promise.all([
    dockerUp ? imageId(runner, inputs.registryImage, api) : Promise.resolve(undefined),
    dockerUp && wanted
      ? inspectContainer(runner, REGISTRY_CONTAINER, api)
      : Promise.resolve(undefined),
    dockerUp && wanted && inputs.registryMirror !== false
      ? inspectContainer(runner, MIRROR_CONTAINER, api)
      : Promise.resolve(undefined),
    auth ? readFileMaybe(runner, AUTH_FILE) : Promise.resolve(''),
    wanted ? certInstalled(ctx) : Promise.resolve(true),
    cacheContainers(ctx, dockerUp, api)
  ])
  ctx.show(
    registryFacts(
      inputs,
      !dockerUp ? 'docker down' : !registry ? 'absent' : registry.running ? 'running' : 'stopped'
    )
  )
  return {
    me,
    wanted,
    dockerUp,
    imageId: id,
    htpasswdOk:
      !auth || (htpasswd !== undefined && htpasswdMatches(htpasswd, inputs.registryHtpasswd)),
    htpasswdOpen: auth && (await isOpen(AUTH_FILE)),
    certOk,
    registry,
    mirror,
    fileHashes: await fileHashes(ctx),
    dataDirs: await dataDirs(inputs, wanted),
    portHolders: await portHolders(ctx, wanted, {registry, mirror, caches}),
    caches
  }
}
