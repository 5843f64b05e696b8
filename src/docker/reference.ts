/**
 * The project's one parser for image references and registry addresses (pure). It follows the
 * grammar of the distribution project's `reference` package, which is what `docker push` obeys.
 */

/** A parsed `[domain/]path[:tag][@digest]`. */
export interface ImageReference {
  /** Registry host[:port] when the reference names one (`localhost:5000`, `ghcr.io`, `[::1]:5000`). */
  domain?: string
  /** Repository path, e.g. `org/app`. */
  path: string
  tag?: string
  digest?: string
}

/** A registry address as `registry` accepts it: host and optional port. */
export interface RegistryAddress {
  /** Host as written for an image reference: name, IPv4, or `[IPv6]`. */
  host: string
  port?: number
  /** `host[:port]`, the prefix of image references pushed there. */
  text: string
}

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/
const TAG = /^[\w][\w.-]{0,127}$/
const DIGEST = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/
const NAME_MAX = 255

/** Docker's own rule: the first component is a registry when it has `.` or `:`, is localhost, or has capitals. */
export function looksLikeDomain(component: string): boolean {
  return (
    component.includes('.') ||
    component.includes(':') ||
    component === 'localhost' ||
    component !== component.toLowerCase()
  )
}

/** Returns an error text, or undefined when `host[:port]` is a valid registry domain. */
function domainError(domain: string): string | undefined {
  let host = domain
  let port: string | undefined
  if (domain.startsWith('[')) {
    const end = domain.indexOf(']')
    if (end < 0) return 'an IPv6 address needs its closing ]'
    host = domain.slice(0, end + 1)
    const rest = domain.slice(end + 1)
    if (rest !== '') {
      if (!rest.startsWith(':')) return `unexpected ${JSON.stringify(rest)} after the IPv6 address`
      port = rest.slice(1)
    }
    if (!isIPv6(host.slice(1, -1))) return `${host} is not an IPv6 address`
  } else {
    const colon = domain.indexOf(':')
    if (colon >= 0) {
      host = domain.slice(0, colon)
      port = domain.slice(colon + 1)
    }
    if (host === '') return 'the host is empty'
    if (!host.split('.').every(c => DOMAIN_COMPONENT.test(c))) {
      return `${JSON.stringify(host)} is not a host name or IPv4 address`
    }
  }
  if (port !== undefined) {
    const n = Number(port)
    if (!/^\d{1,5}$/.test(port) || n < 1 || n > 65535) {
      return `port ${JSON.stringify(port)} is not a number from 1 to 65535`
    }
  }
  return undefined
}

function isIPv6(text: string): boolean {
  if (!/^[0-9a-fA-F:.]+$/.test(text) || !text.includes(':')) return false
  const double = text.split('::')
  if (double.length > 2) return false
  const groups = text.split(':').filter(g => g !== '')
  if (groups.length > 8 || (double.length === 1 && groups.length !== 8)) return false
  return groups.every((g, i) =>
    i === groups.length - 1 && g.includes('.') ? IPV4.test(g) : /^[0-9a-fA-F]{1,4}$/.test(g)
  )
}

/** Parses an image reference; throws Error with a reason a person can act on. */
export function parseReference(text: string): ImageReference {
  if (text === '') throw new Error('the reference is empty')
  if (/\s/.test(text)) throw new Error('a reference cannot contain spaces')
  let rest = text
  let digest: string | undefined
  const at = rest.indexOf('@')
  if (at >= 0) {
    digest = rest.slice(at + 1)
    rest = rest.slice(0, at)
    if (!DIGEST.test(digest)) {
      throw new Error(`${JSON.stringify(digest)} is not a digest (algorithm:hex, e.g. sha256:…)`)
    }
    if (digest.startsWith('sha256:') && !/^sha256:[0-9a-f]{64}$/.test(digest)) {
      throw new Error('a sha256 digest is 64 lowercase hex characters')
    }
  }
  let tag: string | undefined
  const lastColon = rest.lastIndexOf(':')
  if (lastColon > rest.lastIndexOf('/') && !rest.slice(lastColon).includes(']')) {
    tag = rest.slice(lastColon + 1)
    rest = rest.slice(0, lastColon)
    if (!TAG.test(tag)) {
      throw new Error(
        `tag ${JSON.stringify(tag)} is invalid (letters, digits, _ . -, not starting with . or -, at most 128)`
      )
    }
  }
  if (rest.length > NAME_MAX) throw new Error(`the name is longer than ${NAME_MAX} characters`)
  const parts = rest.split('/')
  let domain: string | undefined
  if (parts.length > 1 && looksLikeDomain(parts[0])) {
    domain = parts[0]
    parts.shift()
    const err = domainError(domain)
    if (err) throw new Error(`registry ${JSON.stringify(domain)}: ${err}`)
  }
  for (const part of parts) {
    if (!PATH_COMPONENT.test(part)) {
      throw new Error(
        `${JSON.stringify(part)} is not a valid name component (lowercase letters, digits, and . _ __ - between them)`
      )
    }
  }
  return {domain, path: parts.join('/'), tag, digest}
}

/** `domain/path[:tag][@digest]` as docker writes it. */
export function formatReference(ref: ImageReference): string {
  return (
    (ref.domain ? `${ref.domain}/` : '') +
    ref.path +
    (ref.tag ? `:${ref.tag}` : '') +
    (ref.digest ? `@${ref.digest}` : '')
  )
}

/** Parses the `registry` input; a bare `myhost` is refused since Docker would read it as a Hub namespace. */
export function parseRegistryAddress(text: string): RegistryAddress {
  if (/^[a-z]+:\/\//i.test(text)) {
    throw new Error('write host[:port] without a scheme (http:// or https://)')
  }
  if (text.includes('/')) throw new Error('write host[:port] without a path')
  const err = domainError(text)
  if (err) throw new Error(err)
  if (!looksLikeDomain(text)) {
    throw new Error(
      'a bare host name would be read as a Docker Hub namespace: add a port (myhost:5000) or use a name with a dot'
    )
  }
  let host = text
  let port: number | undefined
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(text)
  if (m) {
    host = m[1]
    port = m[2] === undefined ? undefined : Number(m[2])
  }
  return {host, port, text}
}

/** True for localhost and loopback addresses, which Docker reaches over plain HTTP without `insecure-registries`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase()
  return (
    h === 'localhost' ||
    h.endsWith('.localhost') ||
    /^127\.\d+\.\d+\.\d+$/.test(h) ||
    h === '[::1]' ||
    h === '[0:0:0:0:0:0:0:1]'
  )
}
