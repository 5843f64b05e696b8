/**
 * Reaching a registry as the daemon would: secure or insecure from its registry settings, which
 * schemes to try in which order, TLS (the CAs Docker trusts, certs.d's files), the proxy its
 * requests go through, and the connection pools that do all that.
 */
import {promises as dns} from 'node:dns'
import * as http from 'node:http'
import * as https from 'node:https'
import {BlockList, isIP} from 'node:net'
import * as path from 'node:path'
import * as tls from 'node:tls'
import * as core from '@actions/core'
import {withoutCredentials, type Proxies} from '../docker/proxy.js'
import {HostError, errorMessage} from '../errors.js'
import type {CommandRunner} from '../exec/runner.js'
import {listDirMaybe, readFileMaybe} from '../system/files.js'
import {RegistryError} from './http.js'

/** The daemon's registry settings as `docker info` shows them (RegistryConfig). */
export interface DaemonRegistryConfig {
  /** insecure-registries given as CIDRs (127.0.0.0/8 by default). */
  insecureCidrs: string[]
  /** Registries the daemon knows by name (insecure-registries entries, docker.io): secure or not. */
  indexes: Record<string, boolean>
  /** The proxies the daemon reaches registries through (`docker info`); undefined: not read. */
  proxies?: DaemonProxies
}

/** What the daemon trusts when nothing is configured: loopback only. */
export const DEFAULT_REGISTRY_CONFIG: DaemonRegistryConfig = {
  insecureCidrs: ['127.0.0.0/8', '::1/128'],
  indexes: {}
}

/** Reads `docker info --format '{{json .RegistryConfig}}'`. */
export function parseRegistryConfig(json: string): DaemonRegistryConfig {
  const raw = JSON.parse(json) as {
    InsecureRegistryCIDRs?: unknown
    IndexConfigs?: Record<string, {Secure?: unknown}> | null
  } | null
  if (raw === null) return DEFAULT_REGISTRY_CONFIG
  const cidrs = Array.isArray(raw.InsecureRegistryCIDRs)
    ? raw.InsecureRegistryCIDRs.map(String)
    : []
  const indexes = Object.fromEntries(
    Object.entries(raw.IndexConfigs ?? {}).map(([name, c]) => [name, c.Secure !== false])
  )
  return {insecureCidrs: cidrs, indexes}
}

/**
 * Where a registry's API answers, as Docker maps it: Docker Hub (`docker.io`, and its old name
 * `index.docker.io`) at registry-1.docker.io; every other registry at its own name.
 */
export function registryEndpoint(registry: string): string {
  return registry === 'docker.io' || registry === 'index.docker.io'
    ? 'registry-1.docker.io'
    : registry
}

/** The host part of `host[:port]`, without IPv6 brackets. */
export function registryHostname(registry: string): string {
  if (registry.startsWith('[')) return registry.slice(1, registry.indexOf(']'))
  const colon = registry.lastIndexOf(':')
  return colon < 0 ? registry : registry.slice(0, colon)
}

function inCidrs(cidrs: readonly string[], address: string): boolean {
  const family = isIP(address)
  if (family === 0) return false
  const list = new BlockList()
  for (const cidr of cidrs) {
    const [net, bits] = cidr.split('/')
    const type = isIP(net)
    if (type === 0 || bits === undefined) continue
    list.addSubnet(net, Number(bits), type === 4 ? 'ipv4' : 'ipv6')
  }
  return list.check(address, family === 4 ? 'ipv4' : 'ipv6')
}

/**
 * Docker's rule: a registry named in the daemon's settings is what they say; otherwise it is
 * insecure when one of its addresses lies in an insecure CIDR (loopback by default).
 */
export function isSecureRegistry(
  registry: string,
  config: DaemonRegistryConfig,
  addresses: readonly string[]
): boolean {
  const named = config.indexes[registry]
  if (named !== undefined) return named
  return !addresses.some(a => inCidrs(config.insecureCidrs, a))
}

async function addresses(host: string): Promise<string[]> {
  if (isIP(host) !== 0) return [host]
  try {
    return (await dns.lookup(host, {all: true})).map(a => a.address)
  } catch {
    // An unknown name is secure by Docker's rule; connecting will say what is wrong.
    return []
  }
}

/** Docker's rule for `registry`, its name resolved to the addresses it is judged by. */
export async function registryIsSecure(
  registry: string,
  config: DaemonRegistryConfig
): Promise<boolean> {
  return isSecureRegistry(registry, config, await addresses(registryHostname(registry)))
}

/** One way to reach a registry: the scheme, and whether its certificate is checked. */
export interface Scheme {
  scheme: 'https' | 'http'
  verify: boolean
}

/** Schemes in the daemon's order: HTTPS only for a secure registry; unchecked HTTPS, then HTTP, else. */
export function schemesFor(secure: boolean): Scheme[] {
  return secure
    ? [{scheme: 'https', verify: true}]
    : [
        {scheme: 'https', verify: false},
        {scheme: 'http', verify: false}
      ]
}

/** The files of /etc/docker/certs.d/<registry>/ Docker reads: CAs (*.crt) and client pairs (*.cert, *.key). */
export interface CertFiles {
  cas: string[]
  pairs: {cert: string; key: string}[]
}

/** Sorts a certs.d folder's file names as Docker does; a client certificate without its key is an error. */
export function certFiles(names: readonly string[]): CertFiles {
  const sorted = [...names].sort()
  const cas = sorted.filter(n => n.endsWith('.crt'))
  const certs = sorted.filter(n => n.endsWith('.cert'))
  const keys = sorted.filter(n => n.endsWith('.key'))
  const pairs = certs.map(cert => {
    const key = `${cert.slice(0, -'.cert'.length)}.key`
    if (!keys.includes(key)) throw new Error(`missing key ${key} for client certificate ${cert}`)
    return {cert, key}
  })
  const lone = keys.find(k => !certs.includes(`${k.slice(0, -'.key'.length)}.cert`))
  if (lone !== undefined) throw new Error(`missing client certificate for key ${lone}`)
  return {cas, pairs}
}

const CERTS_D = '/etc/docker/certs.d'

/** Reads a file of certs.d (one only root may read through sudo: its text never reaches argv). */
async function readAsRoot(runner: CommandRunner, file: string): Promise<string> {
  const text = await readFileMaybe(runner, file)
  if (text === undefined) throw new HostError(`${file} could not be read`)
  return text
}

/** The TLS files Docker would use for a registry: extra CAs, and a client certificate and key. */
export interface RegistryTls {
  cas: string[]
  client?: {cert: string; key: string}
}

/**
 * Reads /etc/docker/certs.d/<registry>/ as the daemon would (its CAs, its first client pair),
 * with the CA file `extraCa` (the caller's own) after its CAs.
 */
export async function readCertsD(
  runner: CommandRunner,
  registry: string,
  extraCa?: string
): Promise<RegistryTls> {
  const dir = path.join(CERTS_D, registry)
  let files
  try {
    files = certFiles(await listDirMaybe(runner, dir))
  } catch (e) {
    throw new HostError(`${dir}: ${errorMessage(e)}`)
  }
  const read = (name: string): Promise<string> => readAsRoot(runner, path.join(dir, name))
  const cas = await Promise.all(files.cas.map(read))
  if (extraCa !== undefined) cas.push(await readAsRoot(runner, extraCa))
  const pair = files.pairs[0]
  const client = pair ? {cert: await read(pair.cert), key: await read(pair.key)} : undefined
  return {cas, client}
}

/** The proxies the daemon pulls and pushes through, as `docker info` shows them ('' when unset). */
export interface DaemonProxies {
  http: string
  https: string
  noProxy: string
}

/** How Docker shows a proxy URL's user and password in `docker info`. */
const MASKED = /^[a-z][a-z0-9+.-]*:\/\/xxxxx:xxxxx@/i

function entries(list: string | undefined): string[] {
  return (list ?? '')
    .split(',')
    .map(e => e.trim())
    .filter(Boolean)
}

/**
 * The proxies this process's own registry requests go through, so that they go where the daemon's
 * pushes would: the proxy inputs when given (the daemon has just been given them too); else the
 * daemon's own; else, when Docker masked their credentials or could not be asked, the proxy
 * variables of this process's environment. None when the daemon has none.
 */
export function requestProxies(
  inputs: Proxies | undefined,
  daemon: DaemonProxies | undefined,
  env: Readonly<Record<string, string | undefined>>
): Proxies | undefined {
  if (inputs) return inputs
  const masked = daemon !== undefined && (MASKED.test(daemon.http) || MASKED.test(daemon.https))
  if (daemon && !masked) {
    if (daemon.http === '' && daemon.https === '') return undefined
    return {
      http: daemon.http || undefined,
      https: daemon.https || undefined,
      noProxy: entries(daemon.noProxy)
    }
  }
  // Go's order (the daemon's): the upper-case name first, the first one set.
  const http = env.HTTP_PROXY || env.http_proxy
  const https = env.HTTPS_PROXY || env.https_proxy
  if (!http && !https) return undefined
  return {http, https, noProxy: entries(env.NO_PROXY || env.no_proxy)}
}

/** Go sends these direct whatever no-proxy says: the name localhost and loopback addresses. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || inCidrs(['127.0.0.0/8', '::1/128'], host)
}

/**
 * One no-proxy entry against a host and port, by Go's rules (the daemon's): `*` is everything, a
 * CIDR its addresses, an address itself, `name` the name and its subdomains, `.name` and `*.name`
 * the subdomains only; `entry:port` one port.
 */
function bypasses(entry: string, host: string, port: string): boolean {
  if (entry === '*') return true
  if (entry.includes('/')) return inCidrs([entry], host)
  // A bare IPv6 address has colons of its own; `[v6]:port` and `name:port` name a port.
  const withPort = isIP(entry) === 6 ? null : /^\[?(.*?)\]?:(\d+)$/.exec(entry)
  if (withPort && withPort[2] !== port) return false
  const bare = (withPort ? withPort[1] : entry).toLowerCase().replace(/^\*\./, '.')
  if (isIP(bare) !== 0) return host === bare
  const alsoItself = !bare.startsWith('.')
  const suffix = alsoItself ? `.${bare}` : bare
  return isIP(host) === 0 && (host.endsWith(suffix) || (alsoItself && host === bare))
}

/**
 * The proxy URL a request to `host` (`name[:port]`, as in image references) over `scheme` goes
 * through; undefined for a direct one: no proxy for the scheme, loopback, or a no-proxy match.
 */
export function proxyFor(
  registry: string,
  scheme: 'http' | 'https',
  p: Proxies | undefined
): string | undefined {
  const url = scheme === 'https' ? p?.https : p?.http
  if (!p || !url) return undefined
  const host = registryHostname(registry).toLowerCase()
  const colon = registry.lastIndexOf(':')
  const explicit = colon > registry.lastIndexOf(']') ? registry.slice(colon + 1) : ''
  const port = explicit || (scheme === 'https' ? '443' : '80')
  if (isLoopback(host)) return undefined
  return p.noProxy.some(e => bypasses(e, host, port)) ? undefined : url
}

let systemAndNode: string[] | undefined

/**
 * The CAs a registry's certificate is checked against: the system's (/etc/ssl/certs, what Docker
 * trusts), Node's own and NODE_EXTRA_CA_CERTS (so nothing Node trusts by default is lost), then
 * certs.d's and the local registry's. The system's are read once per run.
 */
function trustedCas(extra: readonly string[]): string[] {
  if (systemAndNode === undefined) {
    // tls.getCACertificates is Node 22.15 and later; before, Node's own bundle only.
    const read = (tls as {getCACertificates?: (t: string) => string[]}).getCACertificates
    systemAndNode = read ? [...read('system'), ...read('default')] : [...tls.rootCertificates]
  }
  return [...systemAndNode, ...extra]
}

/** Node's agents take a proxy (`proxyEnv`) since 24.5; older ones ignore the option. */
function agentsTakeProxies(version = process.versions.node): boolean {
  const [major, minor] = version.split('.').map(Number)
  return major > 24 || (major === 24 && minor >= 5)
}

/** What a connection pool needs beyond its scheme and host. */
export interface PoolOptions {
  /** PEM CAs trusted beside the system's (certs.d, the local registry's certificate). */
  cas: readonly string[]
  /** The client certificate certs.d holds: the registry's alone, never sent elsewhere. */
  client?: {cert: string; key: string}
  proxies?: Proxies
}

/** The proxy requests to `host` over `scheme` go through; throws when this Node cannot use one. */
export function usableProxy(
  host: string,
  scheme: Scheme['scheme'],
  proxies: Proxies | undefined,
  node = process.versions.node
): string | undefined {
  const proxy = proxyFor(host, scheme, proxies)
  if (proxy !== undefined && !agentsTakeProxies(node)) {
    throw new RegistryError(
      `${host} is reached through the proxy ${withoutCredentials(proxy)}, which Node v${node} cannot use (it can since 24.5)`,
      false
    )
  }
  return proxy
}

/** A keep-alive connection pool to `host` over scheme `s`, through the proxy the daemon would use. */
export function connectionPool(s: Scheme, host: string, o: PoolOptions): http.Agent {
  const proxy = usableProxy(host, s.scheme, o.proxies)
  if (proxy !== undefined) core.debug(`${host}: through ${withoutCredentials(proxy)}`)
  if (s.scheme === 'http') {
    return new http.Agent({keepAlive: true, ...(proxy ? {proxyEnv: {HTTP_PROXY: proxy}} : {})})
  }
  return new https.Agent({
    keepAlive: true,
    rejectUnauthorized: s.verify,
    ca: trustedCas(o.cas),
    ...(o.client ? {cert: o.client.cert, key: o.client.key} : {}),
    ...(proxy ? {proxyEnv: {HTTPS_PROXY: proxy}} : {})
  })
}
