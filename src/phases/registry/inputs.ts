/** The registry phase's inputs: their action.yml defaults, their type, and their parser (pure). */
import {parseRegistryAddress, type RegistryAddress} from '../../docker/reference.js'
import {
  booleanText,
  existingPath,
  fail,
  imageReference,
  int,
  optional,
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
  insecureRegistry: Tristate
  /** `images` names something to push (from the push phase's inputs): a reason to run a registry. */
  pushesImages: boolean
}

/** What the registry phase reads: its inputs and the air-gapped folder (nothing is pulled then). */
export interface RegistrySettings extends RegistryInputs {
  offlineDebs?: string
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
    registryMirrorPort: mirrorPort(raw, registry, registryMirror),
    insecureRegistry: tristate(raw, 'insecure-registry')
  }
}
