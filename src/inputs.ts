import * as core from '@actions/core'
import {InputError} from './errors.js'
import {parseReference, parseRegistryAddress, type RegistryAddress} from './docker/reference.js'
import {
  parseImageList,
  parseTagList,
  splitList,
  type ListItemError,
  type PushTarget
} from './push/image-list.js'

/**
 * Every input with its action.yml default. action.yml is the source of truth; this table repeats
 * it so `node dist/index.js` outside a runner (no INPUT_* set) runs on the same defaults, and a
 * unit test keeps the two equal.
 */
export const INPUT_DEFAULTS = {
  'install-docker': 'auto',
  'docker-source': 'docker',
  'docker-version': '',
  'docker-apt-url': '',
  'offline-debs': '',
  'docker-users': '',
  'daemon-config': '',
  'gpu-runtime': 'auto',
  'nvidia-default-runtime': 'true',
  'nvidia-toolkit-version': '',
  'nvidia-apt-url': 'https://nvidia.github.io/libnvidia-container/stable/deb',
  'nvidia-apt-key': 'https://nvidia.github.io/libnvidia-container/gpgkey',
  'nvidia-cdi': 'false',
  'gpu-check': 'auto',
  'gpu-check-image': '',
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
  'insecure-registry': 'auto',
  username: '',
  password: '',
  images: '',
  tags: '',
  'push-concurrency': '2',
  'push-retries': '3',
  'dry-run': 'false',
  summary: 'true',
  cleanup: 'none'
} as const

export type InputName = keyof typeof INPUT_DEFAULTS
export type RawInputs = Record<InputName, string>
export type Tristate = 'auto' | 'true' | 'false'

export interface HtpasswdEntry {
  user: string
  password: string
}

/** The validated inputs; nothing downstream reads raw input text. */
export interface Inputs {
  installDocker: Tristate
  dockerSource: 'docker' | 'distro' | 'offline'
  dockerVersion?: string
  /** Explicit `docker-apt-url`; undefined means "Docker's repository for this distribution". */
  dockerAptUrl?: string
  offlineDebs?: string
  /** Explicit `docker-users`; undefined means "the runner's user when it is not root". */
  dockerUsers?: string[]
  daemonConfig?: Record<string, unknown>
  gpuRuntime: 'auto' | 'nvidia' | 'none'
  nvidiaDefaultRuntime: boolean
  nvidiaToolkitVersion?: string
  nvidiaAptUrl: string
  nvidiaAptKey: string
  nvidiaCdi: boolean
  gpuCheck: Tristate
  gpuCheckImage?: string
  registry: RegistryAddress
  startRegistry: Tristate
  registryImage: string
  registryImageArchive?: string
  registryBind?: string
  registryData: string
  registryHtpasswd: HtpasswdEntry[]
  registryTlsCert?: string
  registryTlsKey?: string
  /** false, or the upstream URL to cache (Docker Hub's for `true`). */
  registryMirror: false | string
  registryMirrorPort: number
  insecureRegistry: Tristate
  username?: string
  password?: string
  images: PushTarget[]
  pushConcurrency: number
  pushRetries: number
  dryRun: boolean
  summary: boolean
  cleanup: 'none' | 'registry' | 'all'
}

/** What input validation may ask of the host: read-only checks. */
export interface InputHost {
  /** 'file', 'dir', or undefined when the path does not exist. */
  pathKind(path: string): 'file' | 'dir' | undefined
}

/** Inputs whose values are secret: never echoed back in an error. */
const SECRET_INPUTS: ReadonlySet<InputName> = new Set(['password', 'registry-htpasswd'])

function fail(name: InputName, value: string, accepted: string): never {
  throw new InputError(name, SECRET_INPUTS.has(name) && value !== '' ? '***' : value, accepted)
}

function oneOf<T extends string>(raw: RawInputs, name: InputName, allowed: readonly T[]): T {
  const value = raw[name].trim()
  const lower = value.toLowerCase()
  const hit = allowed.find(a => a === lower)
  if (hit === undefined) fail(name, value, `use one of ${allowed.join(', ')}`)
  return hit
}

const TRUE = ['true', 'True', 'TRUE']
const FALSE = ['false', 'False', 'FALSE']

/** YAML 1.2 core booleans, as core.getBooleanInput accepts them. */
function bool(raw: RawInputs, name: InputName): boolean {
  const value = raw[name].trim()
  if (TRUE.includes(value)) return true
  if (FALSE.includes(value)) return false
  return fail(name, value, 'use true or false')
}

function tristate(raw: RawInputs, name: InputName): Tristate {
  const value = raw[name].trim()
  if (value === 'auto') return 'auto'
  if (TRUE.includes(value)) return 'true'
  if (FALSE.includes(value)) return 'false'
  return fail(name, value, 'use auto, true or false')
}

function int(raw: RawInputs, name: InputName, min: number, max: number): number {
  const value = raw[name].trim()
  const n = Number(value)
  if (!/^\d+$/.test(value) || n < min || n > max) {
    fail(name, value, `use a whole number from ${min} to ${max}`)
  }
  return n
}

function optional(raw: RawInputs, name: InputName): string | undefined {
  const value = raw[name].trim()
  return value === '' ? undefined : value
}

function url(raw: RawInputs, name: InputName, schemes: string[]): string | undefined {
  const value = optional(raw, name)
  if (value === undefined) return undefined
  let parsed: URL | undefined
  try {
    parsed = new URL(value)
  } catch {
    parsed = undefined
  }
  if (
    !parsed ||
    !schemes.includes(parsed.protocol) ||
    (parsed.protocol !== 'file:' && !parsed.host)
  ) {
    fail(name, value, `use an absolute ${schemes.map(s => s.replace(':', '')).join(' or ')} URL`)
  }
  return value.replace(/\/+$/, '')
}

function existingPath(
  raw: RawInputs,
  name: InputName,
  host: InputHost,
  kind: 'file' | 'dir'
): string | undefined {
  const value = optional(raw, name)
  if (value === undefined) return undefined
  if (!value.startsWith('/')) fail(name, value, `use an absolute path to a ${kindName(kind)}`)
  const found = host.pathKind(value)
  if (found !== kind) {
    fail(name, value, `no ${kindName(kind)} exists at that path`)
  }
  return value
}

function kindName(kind: 'file' | 'dir'): string {
  return kind === 'file' ? 'file' : 'folder'
}

/** The upstream a `registry-mirror: true` cache pulls through. */
export const DOCKER_HUB = 'https://registry-1.docker.io'

const PACKAGE_VERSION = /^[0-9][A-Za-z0-9.+~:-]*$/
const USER_NAME = /^[a-z_][a-z0-9_.-]{0,31}\$?$/
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/

function referenceInput(raw: RawInputs, name: InputName): string | undefined {
  const value = optional(raw, name)
  if (value === undefined) return undefined
  try {
    parseReference(value)
  } catch (e) {
    fail(name, value, `not an image reference: ${(e as Error).message}`)
  }
  return value
}

function parseHtpasswd(raw: RawInputs): HtpasswdEntry[] {
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

function parseDaemonConfig(raw: RawInputs): Record<string, unknown> | undefined {
  const value = optional(raw, 'daemon-config')
  if (value === undefined) return undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(value)
  } catch (e) {
    fail('daemon-config', value, `not valid JSON (${(e as Error).message})`)
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    fail('daemon-config', value, 'use a JSON object, e.g. {"log-driver": "local"}')
  }
  return parsed as Record<string, unknown>
}

function parseMirror(raw: RawInputs): false | string {
  const value = raw['registry-mirror'].trim()
  if (FALSE.includes(value)) return false
  if (TRUE.includes(value)) return DOCKER_HUB
  const parsed = url(raw, 'registry-mirror', ['http:', 'https:'])
  if (parsed === undefined) fail('registry-mirror', value, 'use true, false or an upstream URL')
  return parsed
}

/**
 * Validates every input before anything changes (pure apart from `host.pathKind`).
 * Throws InputError with one line naming the input, the value and what is accepted.
 */
export function parseInputs(raw: RawInputs, host: InputHost): Inputs {
  const installDocker = tristate(raw, 'install-docker')
  const dockerSource = oneOf(raw, 'docker-source', ['docker', 'distro', 'offline'] as const)
  const dockerVersion = optional(raw, 'docker-version')
  if (dockerVersion !== undefined && !PACKAGE_VERSION.test(dockerVersion)) {
    fail(
      'docker-version',
      dockerVersion,
      'use a version such as 27.3.1 or 5:27.3.1-1~ubuntu.24.04~noble'
    )
  }
  const dockerAptUrl = url(raw, 'docker-apt-url', ['http:', 'https:', 'file:'])
  const offlineDebs = existingPath(raw, 'offline-debs', host, 'dir')
  if (offlineDebs !== undefined && dockerSource !== 'offline') {
    fail(
      'docker-source',
      dockerSource,
      'offline-debs is set, so the host is air-gapped: set docker-source: offline'
    )
  }
  if (dockerSource === 'offline' && offlineDebs === undefined) {
    fail('offline-debs', '', 'docker-source: offline needs offline-debs, a folder of .deb files')
  }
  let dockerUsers: string[] | undefined
  if (optional(raw, 'docker-users') !== undefined) {
    dockerUsers = splitList(raw['docker-users']).map(({value}) => {
      if (!USER_NAME.test(value))
        fail('docker-users', value, 'use user names (lowercase, at most 32 characters)')
      return value
    })
  }
  const daemonConfig = parseDaemonConfig(raw)
  const gpuRuntime = oneOf(raw, 'gpu-runtime', ['auto', 'nvidia', 'none'] as const)
  const nvidiaDefaultRuntime = bool(raw, 'nvidia-default-runtime')
  if (
    daemonConfig !== undefined &&
    'default-runtime' in daemonConfig &&
    daemonConfig['default-runtime'] !== 'nvidia' &&
    nvidiaDefaultRuntime &&
    gpuRuntime !== 'none'
  ) {
    fail(
      'daemon-config',
      JSON.stringify(daemonConfig['default-runtime']),
      'sets default-runtime while nvidia-default-runtime is true: set nvidia-default-runtime: false, or drop default-runtime'
    )
  }
  const nvidiaToolkitVersion = optional(raw, 'nvidia-toolkit-version')
  if (nvidiaToolkitVersion !== undefined && !PACKAGE_VERSION.test(nvidiaToolkitVersion)) {
    fail('nvidia-toolkit-version', nvidiaToolkitVersion, 'use a package version such as 1.17.8-1')
  }
  const nvidiaAptUrl = url(raw, 'nvidia-apt-url', ['http:', 'https:', 'file:']) as string
  const keyText = raw['nvidia-apt-key'].trim()
  let nvidiaAptKey: string
  if (keyText.startsWith('/')) {
    nvidiaAptKey = existingPath(raw, 'nvidia-apt-key', host, 'file') as string
  } else {
    nvidiaAptKey = url(raw, 'nvidia-apt-key', ['http:', 'https:', 'file:']) as string
  }
  if (nvidiaAptUrl === undefined)
    fail('nvidia-apt-url', '', 'use the URL of the toolkit repository')
  if (nvidiaAptKey === undefined) fail('nvidia-apt-key', '', 'use a URL or an absolute path')
  const nvidiaCdi = bool(raw, 'nvidia-cdi')
  const gpuCheck = tristate(raw, 'gpu-check')
  const gpuCheckImage = referenceInput(raw, 'gpu-check-image')

  const registryText = raw.registry.trim()
  let registry: RegistryAddress
  try {
    registry = parseRegistryAddress(registryText)
  } catch (e) {
    fail('registry', registryText, (e as Error).message)
  }
  const startRegistry = tristate(raw, 'start-registry')
  const registryImage = referenceInput(raw, 'registry-image')
  if (registryImage === undefined)
    fail('registry-image', '', 'name the registry image, e.g. registry:3')
  const registryImageArchive = existingPath(raw, 'registry-image-archive', host, 'file')
  const registryBind = optional(raw, 'registry-bind')
  if (
    registryBind !== undefined &&
    !IPV4.test(registryBind) &&
    !/^\[?[0-9a-fA-F:]+\]?$/.test(registryBind)
  ) {
    fail('registry-bind', registryBind, 'use a host IP address such as 127.0.0.1 or 0.0.0.0')
  }
  const registryData = raw['registry-data'].trim()
  if (!registryData.startsWith('/') || registryData === '/' || registryData.includes('\n')) {
    fail('registry-data', registryData, 'use an absolute folder path other than /')
  }
  const registryHtpasswd = parseHtpasswd(raw)
  const registryTlsCert = existingPath(raw, 'registry-tls-cert', host, 'file')
  const registryTlsKey = existingPath(raw, 'registry-tls-key', host, 'file')
  if (registryTlsCert !== undefined && registryTlsKey === undefined) {
    fail('registry-tls-key', '', 'registry-tls-cert is set: give its key file too')
  }
  if (registryTlsKey !== undefined && registryTlsCert === undefined) {
    fail('registry-tls-cert', '', 'registry-tls-key is set: give its certificate file too')
  }
  const registryMirror = parseMirror(raw)
  const registryMirrorPort = int(raw, 'registry-mirror-port', 1, 65535)
  if (registryMirror !== false && registryMirrorPort === (registry.port ?? 443)) {
    fail(
      'registry-mirror-port',
      String(registryMirrorPort),
      `use a port other than the registry's own (${registry.port ?? 443})`
    )
  }
  const insecureRegistry = tristate(raw, 'insecure-registry')
  const username = optional(raw, 'username')
  const password = raw.password === '' ? undefined : raw.password
  if (username !== undefined && password === undefined) {
    fail('password', '', 'username is set: give password too (from a secret)')
  }
  if (password !== undefined && username === undefined) {
    fail('username', '', 'password is set: give username too')
  }
  let tags: string[]
  let images: PushTarget[]
  try {
    tags = parseTagList(raw.tags)
  } catch (e) {
    const err = e as ListItemError
    fail('tags', err.item, `line ${err.line}: ${err.reason}`)
  }
  try {
    images = parseImageList(raw.images, tags, registry)
  } catch (e) {
    const err = e as ListItemError
    fail('images', err.item, `line ${err.line}: ${err.reason}`)
  }
  if (images.length === 0 && tags.length > 0) {
    fail('tags', raw.tags.trim(), 'tags are added to the images in images, which is empty')
  }
  return Object.freeze({
    installDocker,
    dockerSource,
    dockerVersion,
    dockerAptUrl,
    offlineDebs,
    dockerUsers,
    daemonConfig,
    gpuRuntime,
    nvidiaDefaultRuntime,
    nvidiaToolkitVersion,
    nvidiaAptUrl,
    nvidiaAptKey,
    nvidiaCdi,
    gpuCheck,
    gpuCheckImage,
    registry,
    startRegistry,
    registryImage,
    registryImageArchive,
    registryBind,
    registryData: registryData.replace(/\/+$/, ''),
    registryHtpasswd,
    registryTlsCert,
    registryTlsKey,
    registryMirror,
    registryMirrorPort,
    insecureRegistry,
    username,
    password,
    images,
    pushConcurrency: int(raw, 'push-concurrency', 1, 16),
    pushRetries: int(raw, 'push-retries', 0, 10),
    dryRun: bool(raw, 'dry-run'),
    summary: bool(raw, 'summary'),
    cleanup: oneOf(raw, 'cleanup', ['none', 'registry', 'all'] as const)
  })
}

/** Reads every input (INPUT_* unset → the action.yml default); the only caller of core.getInput. */
export function readRawInputs(env: NodeJS.ProcessEnv = process.env): RawInputs {
  const raw = {} as RawInputs
  for (const name of Object.keys(INPUT_DEFAULTS) as InputName[]) {
    const key = `INPUT_${name.replace(/ /g, '_').toUpperCase()}`
    // The runner always sets every input; outside a runner, unset means "use the default".
    raw[name] =
      env[key] === undefined
        ? INPUT_DEFAULTS[name]
        : core.getInput(name, {trimWhitespace: name !== 'password' && name !== 'registry-htpasswd'})
  }
  // Secrets are masked before anything could print them.
  if (raw.password !== '') core.setSecret(raw.password)
  for (const line of raw['registry-htpasswd'].split(/\r?\n/)) {
    const colon = line.indexOf(':')
    if (colon > 0 && line.length > colon + 1) core.setSecret(line.slice(colon + 1))
  }
  return raw
}
