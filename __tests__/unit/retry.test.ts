import {describe, expect, it, jest} from '@jest/globals'
import {RegistryError} from '../../src/registry-client/http.js'
import {
  backoffSeconds,
  isTransient,
  isTransientHttp,
  isTransientNetwork,
  retrying
} from '../../src/registry-client/retry.js'

describe('push failures', () => {
  it.each([
    ['Get "http://127.0.0.1:5077/v2/": dial tcp 127.0.0.1:5077: connect: connection refused', true],
    ['read tcp 127.0.0.1:40000->127.0.0.1:5000: read: connection reset by peer', true],
    ['received unexpected HTTP status: 503 Service Unavailable', true],
    ['received unexpected HTTP status: 502 Bad Gateway', true],
    ['net/http: TLS handshake timeout', true],
    ['put: EOF', true],
    ['unauthorized: authentication required', false],
    ['denied: requested access to the resource is denied', false],
    ['no basic auth credentials', false],
    ['name unknown: repository name not known to registry', false],
    ['An image does not exist locally with the tag: x', false],
    ['something else entirely', false]
  ])('%s → transient %s', (output, expected) => {
    expect(isTransient(output)).toBe(expected)
  })

  it.each<[number, boolean]>([
    [400, false],
    [401, false],
    [403, false],
    [404, false],
    [408, true],
    [429, true],
    [500, true],
    [502, true],
    [503, true]
  ])('HTTP %i → transient %s', (status, expected) => {
    expect(isTransientHttp(status)).toBe(expected)
  })

  it.each<[string | undefined, string, boolean]>([
    ['ECONNRESET', 'read ECONNRESET', true],
    ['ECONNREFUSED', 'connect ECONNREFUSED 10.0.0.5:5000', true],
    ['EPIPE', 'write EPIPE', true],
    ['ETIMEDOUT', 'connect ETIMEDOUT', true],
    ['EAI_AGAIN', 'getaddrinfo EAI_AGAIN registry.corp', true],
    [undefined, 'timed out: no answer within 60 s', true],
    ['ECONNRESET', 'socket hang up', true],
    [undefined, 'socket hang up', false],
    ['ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames", false],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate', false],
    // A code says it all: a host name that looks like a status does not make it transient.
    [
      'ERR_TLS_CERT_ALTNAME_INVALID',
      "Hostname/IP does not match certificate's altnames: Host: gpu-503.corp",
      false
    ],
    // Node's own words when a proxy refuses or drops the CONNECT (checked on Node 24.22).
    [
      'ERR_PROXY_TUNNEL',
      'Failed to establish tunnel to registry.corp:443 via http://proxy:3128: HTTP/1.1 502 Bad Gateway',
      true
    ],
    ['ERR_PROXY_TUNNEL', 'Connection to establish proxy tunnel ended unexpectedly', true],
    [
      'ERR_PROXY_TUNNEL',
      'Failed to establish tunnel to registry.corp:443 via http://proxy:3128: HTTP/1.1 407 Proxy Authentication Required',
      false
    ],
    [
      'ERR_PROXY_TUNNEL',
      'Failed to establish tunnel to registry.corp:443 via http://proxy:3128: HTTP/1.1 403 Forbidden',
      false
    ]
  ])('network failure %s (%s) → transient %s', (code, message, expected) => {
    expect(isTransientNetwork(code, message)).toBe(expected)
  })

  it("takes a refused tunnel's status from the error when Node gives it", () => {
    expect(isTransientNetwork('ERR_PROXY_TUNNEL', 'Failed to establish tunnel', 503)).toBe(true)
    expect(isTransientNetwork('ERR_PROXY_TUNNEL', 'Failed to establish tunnel', 407)).toBe(false)
  })

  it('backs off 1, 2, 4, 8 then 15 s', () => {
    expect([1, 2, 3, 4, 5, 9].map(backoffSeconds)).toEqual([1, 2, 4, 8, 15, 15])
  })
})

describe('the retry loop', () => {
  const waits: number[] = []
  const wait = (s: number): Promise<void> => {
    waits.push(s)
    return Promise.resolve()
  }

  it('retries a transient failure with the backoff, saying so for each target', async () => {
    waits.length = 0
    const info = jest.spyOn(process.stdout, 'write').mockImplementation(() => true)
    let n = 0
    const r = await retrying(
      2,
      ['r/a:1', 'r/b:1'],
      async () => {
        if (++n < 3) throw new RegistryError('PUT answered 503', true, 503)
        return Promise.resolve('done')
      },
      wait
    )
    const said = info.mock.calls.map(c => String(c[0]))
    info.mockRestore()
    expect(r).toEqual({ok: true, value: 'done', attempts: 3})
    expect(waits).toEqual([1, 2])
    expect(said.filter(l => l.includes('push failed (PUT answered 503); retry'))).toEqual([
      'r/a:1: push failed (PUT answered 503); retry 1 of 2 in 1 s\n',
      'r/b:1: push failed (PUT answered 503); retry 1 of 2 in 1 s\n',
      'r/a:1: push failed (PUT answered 503); retry 2 of 2 in 2 s\n',
      'r/b:1: push failed (PUT answered 503); retry 2 of 2 in 2 s\n'
    ])
  })

  it('gives up at once on a failure that is not transient, and after the retries on one that is', async () => {
    waits.length = 0
    const denied = new RegistryError('401 Unauthorized', false, 401)
    const once = await retrying(5, [], () => Promise.reject(denied), wait)
    expect(once).toEqual({ok: false, error: denied, attempts: 1})
    const busy = new RegistryError('503', true, 503)
    const spent = await retrying(1, [], () => Promise.reject(busy), wait)
    expect(spent).toEqual({ok: false, error: busy, attempts: 2})
    expect(waits).toEqual([1])
  })
})
