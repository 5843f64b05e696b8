/**
 * How the daemon would reach a registry (pure): secure or insecure from its registry settings,
 * which schemes to try in which order, and the certificates /etc/docker/certs.d holds for it.
 */
import {BlockList, isIP} from 'node:net'

/** The daemon's registry settings as `docker info` shows them (RegistryConfig). */
export interface DaemonRegistryConfig {
  /** insecure-registries given as CIDRs (127.0.0.0/8 by default). */
  insecureCidrs: string[]
  /** Registries the daemon knows by name (insecure-registries entries, docker.io): secure or not. */
  indexes: Record<string, boolean>
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
