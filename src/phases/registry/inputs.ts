/** The registry phase's inputs: their action.yml defaults, their type, and their parser (pure). */
import type {Proxies} from '../../docker/proxy.js'
import {parseRegistryAddress, type RegistryAddress} from '../../docker/reference.js'
import {
  booleanText,
  existingPath,
  fail,
  imageReference,
  int,
  optional,
  splitList,
  tristate,
  url,
  type InputHost,
  type RawInputs,
  type Tristate
} from '../../input-fields.js'

/** The registry's inputs with their action.yml defaults. */
export const REGISTRY_INPUTS = {
  registry: 'localhost:5000',
  'start-registry': 'auto',
  'registry-image': 'registry:3',
  'registry-image-archive': '',
  'registry-bind': '',
  'registry-data': '/var/lib/docker-gpu-setup/registry',
  'registry-htpasswd': '',
  'registry-tls-cert': '',
  'registry-tls-key': '',
  'registry-mirror': 'false',
  'registry-mirror-port': '5001',
  'registry-caches': '',
  'registry-cache-port': '5002',
  'registry-cache-credentials': '',
  'insecure-registry': 'auto'
} as const

type Raw = RawInputs<keyof typeof REGISTRY_INPUTS>

/** The upstream a `registry-mirror: true` cache pulls through. */
export const DOCKER_HUB = 'https://registry-1.docker.io'

/** One `user:password` line of registry-htpasswd. */
export interface HtpasswdEntry {
  user: string
  password: string
}

/** The registry's TLS files: both or neither. */
export interface TlsFiles {
  cert: string
  key: string
}

/** What the registry phase's inputs say. */
export interface RegistryInputs {
  registry: RegistryAddress
  startRegistry: Tristate
  registryImage: string
  registryImageArchive?: string
  registryBind?: string
  registryData: string
  registryHtpasswd: HtpasswdEntry[]
  registryTls?: TlsFiles
  /** false, or the upstream URL to cache (Docker Hub's for `true`). */
  registryMirror: false | string
  registryMirrorPort: number
  /** Pull-through caches of registries other than Docker Hub, one container each. */
  registryCaches: RegistryCache[]
  insecureRegistry: Tristate
  /**
   * This step says how the registry runs (start-registry true, or an input of its container other
   * than the default). One that does not takes a registry already serving its port as it is.
   */
  configured: boolean
  /** `images` names something to push (from the push phase's inputs): a reason to run a registry. */
  pushesImages: boolean
}

/** One pull-through cache of `registry-caches`. */
export interface RegistryCache {
  /** As written (a URL without its trailing slash): the key of the caches output. */
  upstream: string
  /** What the cache pulls from (https:// for a bare host). */
  remoteUrl: string
  /** The upstream's host and port: how image references name it. */
  host: string
  /** The upstream as a name part: of the container and of the data folder. */
  slug: string
  port: number
  /** From registry-cache-credentials: given to the cache in a file, never in argv. */
  credentials?: {username: string; password: string}
}

/** What the registry phase reads: its inputs, the air-gapped folder and the proxies to give its caches. */
export interface RegistrySettings extends RegistryInputs {
  offlineDebs?: string
  /** The proxies the mirror and the caches fetch upstream through. */
  proxies?: Proxies
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/

function address(raw: Raw): RegistryAddress {
  const text = raw.registry.trim()
  try {
    return parseRegistryAddress(text)
  } catch (e) {
    return fail('registry', text, (e as Error).message)
  }
}

function bindAddress(raw: Raw): string | undefined {
  const bind = optional(raw, 'registry-bind')
  if (bind !== undefined && !IPV4.test(bind) && !/^\[?[0-9a-fA-F:]+\]?$/.test(bind)) {
    fail('registry-bind', bind, 'use a host IP address such as 127.0.0.1 or 0.0.0.0')
  }
  return bind
}

function dataFolder(raw: Raw): string {
  const data = raw['registry-data'].trim()
  if (!data.startsWith('/') || data === '/' || data.includes('\n')) {
    fail('registry-data', data, 'use an absolute folder path other than /')
  }
  return data.replace(/\/+$/, '')
}

function htpasswd(raw: Raw): HtpasswdEntry[] {
  const entries: HtpasswdEntry[] = []
  const seen = new Set<string>()
  raw['registry-htpasswd'].split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '') return
    const colon = line.indexOf(':')
    const user = colon < 0 ? '' : line.slice(0, colon)
    const password = colon < 0 ? '' : line.slice(colon + 1)
    if (colon < 0 || !/^[A-Za-z0-9._@-]{1,64}$/.test(user) || password === '') {
      fail(
        'registry-htpasswd',
        '***',
        `line ${i + 1}: write user:password (user of letters, digits, . _ @ -; a non-empty password)`
      )
    }
    if (seen.has(user)) fail('registry-htpasswd', '***', `line ${i + 1}: user ${user} is repeated`)
    seen.add(user)
    entries.push({user, password})
  })
  return entries
}

function tlsFiles(raw: Raw, host: InputHost): TlsFiles | undefined {
  const cert = existingPath(raw, 'registry-tls-cert', host, 'file')
  const key = existingPath(raw, 'registry-tls-key', host, 'file')
  if (cert !== undefined && key === undefined) {
    fail('registry-tls-key', '', 'registry-tls-cert is set: give its key file too')
  }
  if (key !== undefined && cert === undefined) {
    fail('registry-tls-cert', '', 'registry-tls-key is set: give its certificate file too')
  }
  return cert !== undefined && key !== undefined ? {cert, key} : undefined
}

function mirror(raw: Raw): false | string {
  const value = raw['registry-mirror'].trim()
  const flag = booleanText(value)
  if (flag !== undefined) return flag && DOCKER_HUB
  return (
    url(raw, 'registry-mirror', ['http:', 'https:']) ??
    fail('registry-mirror', value, 'use true, false or an upstream URL')
  )
}

/** The mirror's port, which must not be the registry's own. */
function mirrorPort(raw: Raw, registry: RegistryAddress, cache: false | string): number {
  const port = int(raw, 'registry-mirror-port', 1, 65535)
  if (cache !== false && port === (registry.port ?? 443)) {
    fail(
      'registry-mirror-port',
      String(port),
      `use a port other than the registry's own (${registry.port ?? 443})`
    )
  }
  return port
}

/** Names of Docker Hub: its cache is registry-mirror, the one Docker applies to Hub pulls. */
const DOCKER_HUB_HOSTS = new Set([
  'docker.io',
  'index.docker.io',
  'registry-1.docker.io',
  'registry.hub.docker.com',
  'hub.docker.com'
])

/** One registry-caches entry: a registry host (https) or an http(s) URL of a registry's root. */
function cacheUpstream(value: string, line: number): Omit<RegistryCache, 'port'> {
  const bad = (why: string): never => fail('registry-caches', value, `line ${line}: ${why}`)
  let remoteUrl: string
  let host: string
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    let url: URL | undefined
    try {
      url = new URL(value)
    } catch {
      url = undefined
    }
    if (!url || !['http:', 'https:'].includes(url.protocol) || !url.hostname) {
      return bad('use a registry host such as nvcr.io, or an http or https URL')
    }
    if (url.username || url.password) {
      return bad('give credentials in registry-cache-credentials, not in the URL')
    }
    if (url.pathname !== '/' || url.search || url.hash) {
      return bad("use the registry's root URL, without a path")
    }
    host = url.host
    remoteUrl = `${url.protocol}//${url.host}`
  } else {
    try {
      host = parseRegistryAddress(value).text
    } catch (e) {
      return bad((e as Error).message)
    }
    remoteUrl = `https://${host}`
  }
  if (DOCKER_HUB_HOSTS.has(host.replace(/:443$/, '').toLowerCase())) {
    return bad(
      'Docker Hub is cached by registry-mirror (the only cache Docker applies to Hub pulls)'
    )
  }
  const slug = host
    .toLowerCase()
    .replace(/[^a-z0-9.]+/g, '-')
    .replace(/^-+|-+$/g, '')
  return {upstream: value.replace(/\/+$/, ''), remoteUrl, host, slug}
}

/** Ports the caches take, from registry-cache-port up: never the registry's or the mirror's. */
function cachePorts(raw: Raw, count: number, taken: Map<number, string>): number[] {
  const first = int(raw, 'registry-cache-port', 1, 65535)
  const ports = Array.from({length: count}, (_, i) => first + i)
  const last = ports[ports.length - 1] ?? first
  const clash = ports.find(p => taken.has(p))
  if (last > 65535 || clash !== undefined) {
    fail(
      'registry-cache-port',
      String(first),
      `the ${count} cache(s) take ports ${first} to ${last}, ${clash !== undefined ? `which holds ${taken.get(clash)}` : 'beyond 65535'}: choose another first port`
    )
  }
  return ports
}

/** registry-cache-credentials: `upstream user:token` lines, each for an upstream of registry-caches. */
function cacheCredentials(
  raw: Raw,
  caches: readonly Omit<RegistryCache, 'port'>[]
): Map<string, {username: string; password: string}> {
  const out = new Map<string, {username: string; password: string}>()
  raw['registry-cache-credentials'].split(/\r?\n/).forEach((text, i) => {
    const line = text.trim()
    if (line === '' || line.startsWith('#')) return
    const bad = (why: string): never =>
      fail('registry-cache-credentials', '***', `line ${i + 1}: ${why}`)
    const m = /^(\S+)\s+([^\s:]+):(.+)$/.exec(line)
    if (!m) return bad('write upstream user:token (the upstream as registry-caches names it)')
    const [, name, username, password] = m
    const cache = caches.find(
      c =>
        c.upstream.toLowerCase() === name.toLowerCase() ||
        c.host.toLowerCase() === name.toLowerCase()
    )
    if (!cache) return bad(`${name} is not in registry-caches`)
    if (out.has(cache.upstream)) return bad(`${name} has credentials twice`)
    out.set(cache.upstream, {username, password})
  })
  return out
}

/** registry-caches with their ports and credentials; Docker Hub and repeats refused. */
function caches(raw: Raw, taken: Map<number, string>): RegistryCache[] {
  const items = splitList(raw['registry-caches']).map(({value, line}) => cacheUpstream(value, line))
  const seen = new Set<string>()
  for (const c of items) {
    if (seen.has(c.slug)) fail('registry-caches', c.upstream, `${c.host} is listed twice`)
    seen.add(c.slug)
  }
  const ports = cachePorts(raw, items.length, taken)
  const credentials = cacheCredentials(raw, items)
  return items.map((c, i) => ({...c, port: ports[i], credentials: credentials.get(c.upstream)}))
}

/** Ports the registry and its mirror publish on, with what holds each, for the caches to avoid. */
function takenPorts(
  registry: RegistryAddress,
  tls: TlsFiles | undefined,
  mirror: false | string,
  mirrorPort: number
): Map<number, string> {
  const taken = new Map<number, string>([
    [registry.port ?? (tls ? 443 : 80), `the registry's port ${registry.port ?? (tls ? 443 : 80)}`]
  ])
  if (mirror !== false) taken.set(mirrorPort, `registry-mirror-port ${mirrorPort}`)
  return taken
}

/** The inputs that shape the registry container (and its mirror) beyond its address. */
const CONTAINER_INPUTS = [
  'registry-image',
  'registry-image-archive',
  'registry-bind',
  'registry-data',
  'registry-htpasswd',
  'registry-tls-cert',
  'registry-tls-key',
  'registry-mirror',
  'registry-mirror-port'
] as const

/** Validates the registry's inputs (pure apart from `host.pathKind`); throws InputError. */
export function parseRegistryInputs(
  raw: Raw,
  host: InputHost
): Omit<RegistryInputs, 'pushesImages'> {
  const registry = address(raw)
  const startRegistry = tristate(raw, 'start-registry')
  const registryImage =
    imageReference(raw, 'registry-image') ??
    fail('registry-image', '', 'name the registry image, e.g. registry:3')
  const registryImageArchive = existingPath(raw, 'registry-image-archive', host, 'file')
  const registryBind = bindAddress(raw)
  const registryData = dataFolder(raw)
  const registryHtpasswd = htpasswd(raw)
  const registryTls = tlsFiles(raw, host)
  const registryMirror = mirror(raw)
  const registryMirrorPort = mirrorPort(raw, registry, registryMirror)
  const taken = takenPorts(registry, registryTls, registryMirror, registryMirrorPort)
  return {
    registry,
    startRegistry,
    registryImage,
    registryImageArchive,
    registryBind,
    registryData,
    registryHtpasswd,
    registryTls,
    registryMirror,
    registryMirrorPort,
    registryCaches: caches(raw, taken),
    insecureRegistry: tristate(raw, 'insecure-registry'),
    configured:
      startRegistry === 'true' || CONTAINER_INPUTS.some(n => raw[n].trim() !== REGISTRY_INPUTS[n])
  }
}
