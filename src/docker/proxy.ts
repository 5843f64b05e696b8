/**
 * HTTP proxies as Docker, systemd, apt and containers read them (pure): the variables, the
 * daemon.json `proxies` fragment, the systemd drop-in for engines without it, and the `proxies`
 * entry of a Docker client's config.json, which `docker run` and `docker build` turn into the
 * containers' environment.
 */
import {isJsonObject, type Fragment, type JsonObject} from './daemon-fragment.js'

/** The proxies one run configures: at least one of the two URLs, and the full no-proxy list. */
export interface Proxies {
  http?: string
  https?: string
  /** Every entry: what no-proxy says, then loopback, this host and the local registry. */
  noProxy: string[]
}

/** Always direct: loopback by name and by address (Go skips it anyway; apt and curl do not). */
export const LOOPBACK_NO_PROXY = ['localhost', '127.0.0.0/8', '::1']

/** The no-proxy list as the variables and Docker take it: comma-separated, no spaces. */
export function noProxyText(p: Proxies): string {
  return p.noProxy.join(',')
}

/** Entries in order, each once (compared without case), the first spelling kept. */
export function uniqueEntries(entries: readonly string[]): string[] {
  const seen = new Set<string>()
  const out: string[] = []
  for (const e of entries) {
    const key = e.toLowerCase()
    if (e === '' || seen.has(key)) continue
    seen.add(key)
    out.push(e)
  }
  return out
}

/** True for an address that loopback entries already cover (127.0.0.0/8, ::1). */
function isLoopbackAddress(address: string): boolean {
  return /^127\./.test(address) || address === '::1'
}

/** True for an IPv6 link-local address: tied to one interface, never a destination worth naming. */
function isLinkLocal(address: string): boolean {
  return /^fe[89ab][0-9a-f]:/i.test(address)
}

/**
 * The full no-proxy list: the user's entries, then loopback, this host's names and addresses and
 * the local registry's host (each once; loopback addresses and IPv6 link-local ones left out).
 */
export function fullNoProxy(
  user: readonly string[],
  host: {names: readonly string[]; addresses: readonly string[]},
  registryHost: string | undefined
): string[] {
  const addresses = host.addresses.filter(a => !isLoopbackAddress(a) && !isLinkLocal(a))
  const registry = registryHost?.replace(/^\[|\]$/g, '')
  return uniqueEntries([
    ...user,
    ...LOOPBACK_NO_PROXY,
    ...host.names,
    ...addresses,
    ...(registry ? [registry] : [])
  ])
}

/** Every proxy variable, both cases (curl and apt read the lower, Go both), for commands and containers. */
export function proxyEnvironment(p: Proxies): Record<string, string> {
  const env: Record<string, string> = {}
  if (p.http !== undefined) env.http_proxy = env.HTTP_PROXY = p.http
  if (p.https !== undefined) env.https_proxy = env.HTTPS_PROXY = p.https
  env.no_proxy = env.NO_PROXY = noProxyText(p)
  return env
}

/** daemon.json's `proxies` (Docker 23 and later): what the daemon's pulls and pushes use. */
export function daemonProxyFragment(p: Proxies): Fragment {
  const proxies: JsonObject = {}
  if (p.http !== undefined) proxies['http-proxy'] = p.http
  if (p.https !== undefined) proxies['https-proxy'] = p.https
  proxies['no-proxy'] = noProxyText(p)
  return {source: 'http-proxy, https-proxy, no-proxy', value: {proxies}}
}

/**
 * A value quoted for a systemd EnvironmentFile= line: inside double quotes `\`, `"`, `$` and a
 * backquote are escaped; `%` is no specifier there.
 */
function envFileQuoted(value: string): string {
  return `"${value.replace(/[\\"$`]/g, c => `\\${c}`)}"`
}

/**
 * The environment file that gives dockerd the proxies where daemon.json cannot (Docker before 23),
 * read by the drop-in's EnvironmentFile=: written 0600 root, since a proxy URL may carry a
 * password, and `systemctl show docker` prints a unit's Environment= lines to every user.
 */
export function proxyEnvFile(p: Proxies): string {
  const env = proxyEnvironment(p)
  const lines = ['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY']
    .filter(k => env[k] !== undefined)
    .map(k => `${k}=${envFileQuoted(env[k])}`)
  return [
    '# Written by docker-gpu-setup from its http-proxy, https-proxy and no-proxy inputs.',
    ...lines,
    ''
  ].join('\n')
}

/** The drop-in that points dockerd at `envFile`, the proxies' environment file (Docker before 23). */
export function proxyDropIn(envFile: string): string {
  return [
    '# Written by docker-gpu-setup from its http-proxy, https-proxy and no-proxy inputs.',
    '# The values are in the file below (0600 root: a proxy URL may carry a password).',
    '[Service]',
    `EnvironmentFile=${envFile}`,
    ''
  ].join('\n')
}

/** True when a proxy URL carries a user or password. */
export function hasCredentials(url: string): boolean {
  return withoutCredentials(url) !== url
}

/** The client config's `proxies.default`: Docker turns it into the variables of new containers. */
export function clientProxyEntry(p: Proxies): JsonObject {
  const entry: JsonObject = {}
  if (p.http !== undefined) entry.httpProxy = p.http
  if (p.https !== undefined) entry.httpsProxy = p.https
  entry.noProxy = noProxyText(p)
  return entry
}

/** A value of the client config that these proxies replaced. */
export interface ClientOverwrite {
  key: string
  from: string
  to: string
}

/**
 * The client config with `proxies.default` set to these proxies: every other key kept (auths,
 * credential helpers, other `proxies` entries, other keys of `default`); the values replaced
 * are returned, so a caller can name them.
 */
export function withClientProxies(
  config: JsonObject,
  p: Proxies
): {config: JsonObject; overwrites: ClientOverwrite[]} {
  const proxies = isJsonObject(config.proxies) ? config.proxies : {}
  const current = isJsonObject(proxies.default) ? proxies.default : {}
  const wanted = clientProxyEntry(p)
  const overwrites: ClientOverwrite[] = []
  for (const [key, value] of Object.entries(wanted)) {
    const old = current[key]
    if (old !== undefined && old !== value) {
      overwrites.push({
        key: `proxies.default.${key}`,
        from: typeof old === 'string' ? old : JSON.stringify(old),
        to: typeof value === 'string' ? value : JSON.stringify(value)
      })
    }
  }
  return {
    config: {...config, proxies: {...proxies, default: {...current, ...wanted}}},
    overwrites
  }
}

/** The URL without its user and password, for messages and for comparing with what Docker reports. */
export function withoutCredentials(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1')
}

/** A text with every URL in it (a proxy's, quoted in an error) without its user and password. */
export function withoutCredentialsIn(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^@/\s]*@/gi, '$1')
}
