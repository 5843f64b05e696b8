/**
 * How the daemon would reach a registry (pure): secure or insecure from its registry settings,
 * which schemes to try in which order, the certificates /etc/docker/certs.d holds for it, and
 * the proxy its requests go through.
 */
import {BlockList, isIP} from 'node:net'
import type {Proxies} from '../../docker/proxy.js'

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

/** Where a Docker client config keeps a registry's credentials. */
export type StoredCredentials =
  | {kind: 'inline'; username: string; password: string}
  | {kind: 'helper'; helper: string}
  | {kind: 'none'}

/** The key a Docker client config files a registry under: docker.io by its legacy URL. */
export function credentialKey(registry: string): string {
  return registry === 'docker.io' ? 'https://index.docker.io/v1/' : registry
}

/** The host[:port] of an `auths` key, which may be a URL (`https://host/v1/`). */
function authsHost(key: string): string {
  return key.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').replace(/\/.*$/, '')
}

/**
 * A registry's credentials as `docker push` would find them in a client config (config.json): a
 * credential helper for it (`credHelpers`), else the config's store (`credsStore`), else an
 * `auths` entry (base64 `user:password`, or the two fields). A helper name that is not a plain
 * name is ignored (it becomes part of a program's name).
 */
export function storedCredentials(
  configText: string | undefined,
  registry: string
): StoredCredentials {
  let config: {
    auths?: Record<string, {auth?: string; username?: string; password?: string}>
    credHelpers?: Record<string, string>
    credsStore?: string
  }
  try {
    config = JSON.parse(configText ?? '{}') as typeof config
  } catch {
    return {kind: 'none'}
  }
  const plain = (h: unknown): h is string => typeof h === 'string' && /^[\w.-]+$/.test(h)
  const key = credentialKey(registry)
  const helper = config.credHelpers?.[key] ?? config.credHelpers?.[registry] ?? config.credsStore
  if (plain(helper)) return {kind: 'helper', helper}
  const host = registry === 'docker.io' ? 'index.docker.io' : registry
  const entry = Object.entries(config.auths ?? {}).find(([k]) => authsHost(k) === host)?.[1]
  if (entry?.username && entry.password) {
    return {kind: 'inline', username: entry.username, password: entry.password}
  }
  const decoded = entry?.auth ? Buffer.from(entry.auth, 'base64').toString('utf8') : ''
  const colon = decoded.indexOf(':')
  if (colon > 0) {
    return {kind: 'inline', username: decoded.slice(0, colon), password: decoded.slice(colon + 1)}
  }
  return {kind: 'none'}
}
