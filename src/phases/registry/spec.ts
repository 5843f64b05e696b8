/**
 * The local registry as data (pure): when it runs, the container spec and its hash, docker argv,
 * and what it contributes to daemon.json. Configured through REGISTRY_* variables, which both
 * distribution v2 (config at /etc/docker/registry/config.yml) and v3 (/etc/distribution/config.yml)
 * read, so the action never depends on where the image keeps its config file.
 */
import {LABEL_MANAGED} from '../../docker/labels.js'
import {createHash} from 'node:crypto'
import {canonical, type Fragment} from '../../docker/daemon-fragment.js'
import {proxyEnvironment, type Proxies} from '../../docker/proxy.js'
import {isLoopbackHost} from '../../docker/reference.js'
import {HostError} from '../../errors.js'
import type {HostIdentity} from '../../host.js'
import {
  REGISTRY_INPUTS,
  type RegistryCache,
  type RegistryInputs,
  type RegistrySettings
} from './inputs.js'

/** The local registry's container name. */
export const REGISTRY_CONTAINER = 'docker-gpu-setup-registry'
/** The pull-through cache's container name. */
export const MIRROR_CONTAINER = 'docker-gpu-setup-mirror'
/** Prefix of the container name of each cache of registry-caches. */
export const CACHE_CONTAINER_PREFIX = 'docker-gpu-setup-cache-'
export {LABEL_MANAGED}
/** Label holding the spec's hash: equal hash, same container. */
export const LABEL_SPEC = 'org.docker-gpu-setup.spec'
/** Host folder for the registry's auth and TLS files (mounted read-only). */
export const REGISTRY_ETC = '/etc/docker-gpu-setup/registry'

/** Is `host` (as written in `registry`) this machine? */
export function isThisHost(host: string, me: HostIdentity): boolean {
  if (isLoopbackHost(host)) return true
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase()
  return (
    me.names.some(n => n.toLowerCase() === bare) || me.addresses.some(a => a.toLowerCase() === bare)
  )
}

/**
 * Whether this run manages a local registry. start-registry true or false says so; auto runs one
 * when `registry` is this host and something asks for one: images to push, a `registry` other
 * than the default, auth, TLS or a mirror. A runner passes every input, defaults included, so
 * "the user set registry" can only be seen as a value other than the default.
 */
export function wantsLocalRegistry(
  inputs: Pick<
    RegistryInputs,
    | 'startRegistry'
    | 'registry'
    | 'pushesImages'
    | 'registryHtpasswd'
    | 'registryTls'
    | 'registryMirror'
  >,
  me: HostIdentity
): boolean {
  if (inputs.startRegistry !== 'auto') return inputs.startRegistry === 'true'
  const asked =
    inputs.pushesImages ||
    inputs.registry.text !== REGISTRY_INPUTS.registry ||
    inputs.registryHtpasswd.length > 0 ||
    inputs.registryTls !== undefined ||
    inputs.registryMirror !== false
  return asked && isThisHost(inputs.registry.host, me)
}

/** Host port of the local registry: the one in `registry`, else the scheme's default. */
export function registryPort(inputs: Pick<RegistryInputs, 'registry' | 'registryTls'>): number {
  return inputs.registry.port ?? (inputs.registryTls ? 443 : 80)
}

/** Address the registry is published on (registry-bind, else loopback for a loopback registry). */
export function registryBind(inputs: Pick<RegistryInputs, 'registry' | 'registryBind'>): string {
  return inputs.registryBind ?? (isLoopbackHost(inputs.registry.host) ? '127.0.0.1' : '0.0.0.0')
}

/** One container as the action runs it. */
export interface ContainerSpec {
  name: string
  image: string
  /** Image id the spec was made for: a new image under the same tag recreates the container. */
  imageId: string
  bind: string
  hostPort: number
  env: Record<string, string>
  mounts: {source: string; target: string; readonly: boolean}[]
  /** Hashes of mounted files whose content matters (htpasswd, certificate). */
  fileHashes: Record<string, string>
  /**
   * Variables given through a root-only file (`docker run --env-file`), never argv: an
   * upstream's credentials and the proxies, which may carry a password. Its path and content's hash.
   */
  envFile?: {path: string; hash: string}
  /** sha256 of everything above: the label that says whether a running container is this spec. */
  hash: string
}

/** Hex sha256 of a text or file content. */
export function sha256(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex')
}

function withHash(spec: Omit<ContainerSpec, 'hash'>): ContainerSpec {
  return {...spec, hash: sha256(JSON.stringify(canonical(spec)))}
}

/** Where the registry's htpasswd and TLS files live on the host. */
export const AUTH_FILE = `${REGISTRY_ETC}/htpasswd`
/** Where the registry's certificate is installed (mounted read-only). */
export const TLS_CERT = `${REGISTRY_ETC}/tls.crt`
/** Where the registry's key is installed (mode 0600, mounted read-only). */
export const TLS_KEY = `${REGISTRY_ETC}/tls.key`

/** The main registry's container spec. */
export function registrySpec(
  inputs: RegistryInputs,
  imageId: string,
  fileHashes: {htpasswd?: string; cert?: string; key?: string}
): ContainerSpec {
  const env: Record<string, string> = {
    REGISTRY_HTTP_ADDR: '0.0.0.0:5000',
    REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/var/lib/registry',
    REGISTRY_STORAGE_DELETE_ENABLED: 'true',
    OTEL_TRACES_EXPORTER: 'none'
  }
  const mounts: ContainerSpec['mounts'] = [
    {source: inputs.registryData, target: '/var/lib/registry', readonly: false}
  ]
  const hashes: Record<string, string> = {}
  if (inputs.registryHtpasswd.length > 0) {
    env.REGISTRY_AUTH = 'htpasswd'
    env.REGISTRY_AUTH_HTPASSWD_REALM = 'docker-gpu-setup registry'
    env.REGISTRY_AUTH_HTPASSWD_PATH = '/auth/htpasswd'
    mounts.push({source: AUTH_FILE, target: '/auth/htpasswd', readonly: true})
    hashes.htpasswd = fileHashes.htpasswd ?? ''
  }
  if (inputs.registryTls) {
    env.REGISTRY_HTTP_TLS_CERTIFICATE = '/certs/tls.crt'
    env.REGISTRY_HTTP_TLS_KEY = '/certs/tls.key'
    mounts.push(
      {source: TLS_CERT, target: '/certs/tls.crt', readonly: true},
      {source: TLS_KEY, target: '/certs/tls.key', readonly: true}
    )
    hashes.cert = fileHashes.cert ?? ''
    hashes.key = fileHashes.key ?? ''
  }
  return withHash({
    name: REGISTRY_CONTAINER,
    image: inputs.registryImage,
    imageId,
    bind: registryBind(inputs),
    hostPort: registryPort(inputs),
    env,
    mounts,
    fileHashes: hashes
  })
}

/** Where the env files of the mirror and the caches live (root only: they may hold secrets). */
export const ENV_DIR = `${REGISTRY_ETC}/env`

/** An env file's text as `docker run --env-file` reads it: one KEY=value a line, taken literally. */
export function envFileText(env: Record<string, string>): string {
  return Object.entries(env)
    .map(([k, v]) => `${k}=${v}\n`)
    .join('')
}

/** What a pull-through container keeps out of argv: the upstream's credentials, the proxies. */
function secretEnv(
  proxies: Proxies | undefined,
  credentials: RegistryCache['credentials']
): Record<string, string> {
  return {
    ...(credentials
      ? {
          REGISTRY_PROXY_USERNAME: credentials.username,
          REGISTRY_PROXY_PASSWORD: credentials.password
        }
      : {}),
    ...(proxies ? proxyEnvironment(proxies) : {})
  }
}

/** A pull-through cache of `remoteUrl` on 127.0.0.1:`port` (a proxying registry refuses pushes). */
function pullThroughSpec(
  name: string,
  inputs: RegistrySettings,
  imageId: string,
  cache: {remoteUrl: string; port: number; data: string; credentials?: RegistryCache['credentials']}
): ContainerSpec & {envText?: string} {
  const secret = secretEnv(inputs.proxies, cache.credentials)
  const envText = Object.keys(secret).length > 0 ? envFileText(secret) : undefined
  const spec = withHash({
    name,
    image: inputs.registryImage,
    imageId,
    bind: '127.0.0.1',
    hostPort: cache.port,
    env: {
      REGISTRY_HTTP_ADDR: '0.0.0.0:5000',
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/var/lib/registry',
      REGISTRY_PROXY_REMOTEURL: cache.remoteUrl,
      OTEL_TRACES_EXPORTER: 'none'
    },
    mounts: [{source: cache.data, target: '/var/lib/registry', readonly: false}],
    fileHashes: {},
    envFile: envText ? {path: `${ENV_DIR}/${name}.env`, hash: sha256(envText)} : undefined
  })
  return {...spec, envText}
}

/** The Docker Hub cache's spec (registry-mirror), the only one in registry-mirrors. */
export function mirrorSpec(
  inputs: RegistrySettings,
  imageId: string
): (ContainerSpec & {envText?: string}) | undefined {
  if (inputs.registryMirror === false) return undefined
  return pullThroughSpec(MIRROR_CONTAINER, inputs, imageId, {
    remoteUrl: inputs.registryMirror,
    port: inputs.registryMirrorPort,
    data: `${inputs.registryData}-mirror`
  })
}

/** The container name and data folder of one cache of registry-caches. */
export function cacheNames(
  inputs: Pick<RegistryInputs, 'registryData'>,
  cache: RegistryCache
): {name: string; data: string} {
  return {
    name: `${CACHE_CONTAINER_PREFIX}${cache.slug}`,
    data: `${inputs.registryData}-cache-${cache.slug}`
  }
}

/** One spec per registry-caches entry: its own port, data folder and credentials. */
export function cacheSpecs(
  inputs: RegistrySettings,
  imageId: string
): (ContainerSpec & {envText?: string})[] {
  return inputs.registryCaches.map(cache => {
    const {name, data} = cacheNames(inputs, cache)
    return pullThroughSpec(name, inputs, imageId, {...cache, data})
  })
}

/** The caches output: each upstream as written → the address to pull it through. */
export function cacheAddresses(
  inputs: Pick<RegistryInputs, 'registryCaches'>
): Record<string, string> {
  return Object.fromEntries(inputs.registryCaches.map(c => [c.upstream, `localhost:${c.port}`]))
}

/** `docker run` argv for a spec: restart always, published port, mounts, labels, env; no shell. */
export function runArgv(spec: ContainerSpec): string[] {
  const bind = spec.bind.includes(':') && !spec.bind.startsWith('[') ? `[${spec.bind}]` : spec.bind
  return [
    'docker',
    'run',
    '--detach',
    '--name',
    spec.name,
    '--restart',
    'always',
    '--publish',
    `${bind}:${spec.hostPort}:5000`,
    '--label',
    `${LABEL_MANAGED}=true`,
    '--label',
    `${LABEL_SPEC}=${spec.hash}`,
    ...spec.mounts.flatMap(m => ['--volume', `${m.source}:${m.target}${m.readonly ? ':ro' : ''}`]),
    ...(spec.envFile ? ['--env-file', spec.envFile.path] : []),
    ...Object.entries(spec.env).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
    spec.image
  ]
}

/** What `docker inspect` says of a container of that name. */
export interface ContainerState {
  id: string
  running: boolean
  labels: Record<string, string>
  /** The host port its :5000 is published on. */
  hostPort?: number
}

/** What a container needs: nothing, a start, a first run, or a new container on the same data. */
export type ContainerAction = 'keep' | 'start' | 'create' | 'recreate'

/** Keep, start, create or recreate; a container of that name the action did not make is refused. */
export function containerAction(
  spec: ContainerSpec,
  state: ContainerState | undefined
): ContainerAction {
  if (state === undefined) return 'create'
  if (state.labels[LABEL_MANAGED] !== 'true') {
    throw new HostError(
      `A container named ${spec.name} exists that docker-gpu-setup did not create; it was left alone. Remove or rename it (docker rm -f ${spec.name}) or run your own registry with start-registry: false.`
    )
  }
  if (state.labels[LABEL_SPEC] !== spec.hash) return 'recreate'
  return state.running ? 'keep' : 'start'
}

/**
 * Whether `registry` goes into `insecure-registries`: insecure-registry true, or auto for a
 * plain-HTTP local registry on an address other than loopback (which Docker trusts anyway).
 */
export function insecureRegistry(inputs: RegistryInputs, me: HostIdentity): boolean {
  return (
    inputs.insecureRegistry === 'true' ||
    (inputs.insecureRegistry === 'auto' &&
      wantsLocalRegistry(inputs, me) &&
      !inputs.registryTls &&
      !isLoopbackHost(inputs.registry.host))
  )
}

/**
 * What the registry settings add to daemon.json: the mirror in `registry-mirrors`, and `registry`
 * in `insecure-registries` when it is plain HTTP on a non-loopback address (insecure-registry).
 */
export function registryFragments(inputs: RegistryInputs, me: HostIdentity): Fragment[] {
  const out: Fragment[] = []
  if (insecureRegistry(inputs, me)) {
    out.push({source: 'insecure-registry', value: {'insecure-registries': [inputs.registry.text]}})
  }
  if (wantsLocalRegistry(inputs, me) && inputs.registryMirror !== false) {
    out.push({
      source: 'registry-mirror',
      value: {'registry-mirrors': [`http://127.0.0.1:${inputs.registryMirrorPort}`]}
    })
  }
  return out
}
