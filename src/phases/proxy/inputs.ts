/** The proxy inputs: their action.yml defaults, their type, and their parser (pure). */
import type {Proxies} from '../../docker/proxy.js'
import {withoutCredentials} from '../../docker/proxy.js'
import {fail, splitList, type RawInputs} from '../../input-fields.js'

/** The proxy inputs with their action.yml defaults. */
export const PROXY_INPUTS = {
  'http-proxy': '',
  'https-proxy': '',
  'no-proxy': ''
} as const

type Raw = RawInputs<keyof typeof PROXY_INPUTS>

/** What the proxy inputs say: empty means the action configures no proxy anywhere. */
export interface ProxyInputs {
  http?: string
  https?: string
  /** no-proxy as given; the run adds loopback, this host and the local registry to it. */
  noProxy: string[]
}

/** What the proxy phase reads: the proxies to configure (with the full no-proxy list), if any. */
export interface ProxySettings {
  proxies?: Proxies
}

// Characters that would break a systemd Environment= line, an env file or a shell profile;
// a URL carries them percent-encoded.
const UNSAFE = /[\s"'\\`$]/

/** An http(s) proxy URL with a host and nothing after it; the credentials never echoed back. */
function proxyUrl(raw: Raw, name: 'http-proxy' | 'https-proxy'): string | undefined {
  const value = raw[name].trim()
  if (value === '') return undefined
  const shown = withoutCredentials(value)
  let url: URL | undefined
  try {
    url = new URL(value)
  } catch {
    url = undefined
  }
  if (!url || !['http:', 'https:'].includes(url.protocol) || url.hostname === '') {
    fail(name, shown, 'use the proxy as an http or https URL, e.g. http://proxy.example.com:3128')
  }
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '') {
    fail(name, shown, 'use the proxy URL alone, without a path, query or fragment')
  }
  if (UNSAFE.test(value)) {
    fail(name, shown, 'percent-encode spaces, quotes, backslashes, ` and $ in the URL')
  }
  return value.replace(/\/+$/, '')
}

const NO_PROXY_ENTRY = /^[A-Za-z0-9._*:/[\]-]+$/

/** no-proxy entries: host names, .domains, IP addresses, CIDR ranges, host:port. */
function noProxyEntries(raw: Raw): string[] {
  return splitList(raw['no-proxy']).map(({value, line}) => {
    if (!NO_PROXY_ENTRY.test(value)) {
      fail(
        'no-proxy',
        value,
        `line ${line}: use host names, .domains, IP addresses or CIDR ranges (e.g. .corp.example.com, 10.0.0.0/8)`
      )
    }
    return value
  })
}

/** Validates the proxy inputs (pure); throws InputError. */
export function parseProxyInputs(raw: Raw): ProxyInputs {
  const http = proxyUrl(raw, 'http-proxy')
  const https = proxyUrl(raw, 'https-proxy')
  const noProxy = noProxyEntries(raw)
  if (noProxy.length > 0 && http === undefined && https === undefined) {
    fail(
      'no-proxy',
      raw['no-proxy'].trim(),
      'no-proxy lists exceptions to http-proxy and https-proxy: set one of them too'
    )
  }
  return {http, https, noProxy}
}
