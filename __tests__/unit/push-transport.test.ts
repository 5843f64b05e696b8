import {describe, expect, it} from '@jest/globals'
import {
  certFiles,
  DEFAULT_REGISTRY_CONFIG,
  isSecureRegistry,
  parseRegistryConfig,
  proxyFor,
  registryHostname,
  requestProxies,
  schemesFor,
  usableProxy
} from '../../src/registry-client/transport.js'
import {errorMessage} from '../../src/errors.js'
import {storedCredentials} from '../../src/registry-client/auth.js'

/** What Docker 20.10 prints for `docker info --format '{{json .RegistryConfig}}'` with one insecure registry. */
const INFO = JSON.stringify({
  AllowNondistributableArtifactsCIDRs: [],
  AllowNondistributableArtifactsHostnames: [],
  InsecureRegistryCIDRs: ['10.9.0.0/16', '127.0.0.0/8'],
  IndexConfigs: {
    'docker.io': {Name: 'docker.io', Mirrors: [], Secure: true, Official: true},
    'build.lan:5000': {Name: 'build.lan:5000', Mirrors: [], Secure: false, Official: false}
  },
  Mirrors: []
})

describe('registry transport', () => {
  const config = parseRegistryConfig(INFO)

  it('reads the daemon’s registry settings', () => {
    expect(config).toEqual({
      insecureCidrs: ['10.9.0.0/16', '127.0.0.0/8'],
      indexes: {'docker.io': true, 'build.lan:5000': false}
    })
    expect(parseRegistryConfig('null')).toEqual(DEFAULT_REGISTRY_CONFIG)
  })

  it.each<[string, string[], boolean]>([
    ['build.lan:5000', ['10.1.1.1'], false],
    ['localhost:5000', ['127.0.0.1'], false],
    ['127.0.0.1:5077', ['127.0.0.1'], false],
    ['cache.lan:5000', ['10.9.3.4'], false],
    ['registry.example.com', ['93.184.216.34'], true],
    ['unknown.example', [], true]
  ])('%s at %j is secure: %s', (registry, addresses, secure) => {
    expect(isSecureRegistry(registry, config, addresses)).toBe(secure)
  })

  it('knows IPv6 loopback as insecure by default', () => {
    expect(isSecureRegistry('[::1]:5000', DEFAULT_REGISTRY_CONFIG, ['::1'])).toBe(false)
    expect(registryHostname('[::1]:5000')).toBe('::1')
    expect(registryHostname('localhost:5000')).toBe('localhost')
    expect(registryHostname('ghcr.io')).toBe('ghcr.io')
  })

  it('tries HTTPS only for a secure registry; unchecked HTTPS, then HTTP, for an insecure one', () => {
    expect(schemesFor(true)).toEqual([{scheme: 'https', verify: true}])
    expect(schemesFor(false)).toEqual([
      {scheme: 'https', verify: false},
      {scheme: 'http', verify: false}
    ])
  })

  it('reads a certs.d folder as Docker does', () => {
    expect(certFiles(['ca.crt', 'client.cert', 'client.key', 'other.crt', 'README'])).toEqual({
      cas: ['ca.crt', 'other.crt'],
      pairs: [{cert: 'client.cert', key: 'client.key'}]
    })
    expect(() => certFiles(['client.cert'])).toThrow('missing key client.key')
    expect(() => certFiles(['client.key'])).toThrow('missing client certificate for key client.key')
  })
})

describe('the proxy of the action’s own registry requests', () => {
  const P = 'http://proxy.corp:3128'
  const inputs = {http: P, https: P, noProxy: ['localhost', '10.0.0.0/8']}

  it('takes the proxy inputs first, then the daemon’s, then (masked or unread) the environment’s', () => {
    const env = {https_proxy: 'http://env:1', HTTPS_PROXY: 'http://ENV:1', NO_PROXY: 'a.lan'}
    const daemon = {http: '', https: 'http://d:3128', noProxy: 'x.lan, y.lan'}
    expect(requestProxies(inputs, daemon, env)).toBe(inputs)
    expect(requestProxies(undefined, daemon, env)).toEqual({
      http: undefined,
      https: 'http://d:3128',
      noProxy: ['x.lan', 'y.lan']
    })
    // The daemon has none: its pushes go direct, whatever the runner's environment says.
    expect(requestProxies(undefined, {http: '', https: '', noProxy: ''}, env)).toBeUndefined()
    // docker info masks a proxy's user and password: the environment's is the one to use.
    const masked = {...daemon, https: 'http://xxxxx:xxxxx@d:3128'}
    // Go's order: the upper-case variable first.
    expect(requestProxies(undefined, masked, env)).toEqual({
      http: undefined,
      https: 'http://ENV:1',
      noProxy: ['a.lan']
    })
    expect(requestProxies(undefined, undefined, {})).toBeUndefined()
  })

  it.each<[string, 'http' | 'https', string[], string | undefined]>([
    ['registry.corp:5000', 'https', [], P],
    ['registry.corp:5000', 'http', [], P],
    ['localhost:5000', 'https', [], undefined],
    ['127.0.0.1:5000', 'http', [], undefined],
    ['[::1]:5000', 'http', [], undefined],
    ['*', 'https', ['*'], undefined],
    ['registry.corp', 'https', ['registry.corp'], undefined],
    ['a.registry.corp', 'https', ['registry.corp'], undefined],
    ['registry.corp', 'https', ['.registry.corp'], P],
    ['a.registry.corp', 'https', ['.registry.corp'], undefined],
    ['a.registry.corp', 'https', ['*.registry.corp'], undefined],
    ['xregistry.corp', 'https', ['registry.corp'], P],
    ['registry.corp:5000', 'https', ['registry.corp:5000'], undefined],
    ['registry.corp:5001', 'https', ['registry.corp:5000'], P],
    ['registry.corp', 'https', ['registry.corp:443'], undefined],
    ['10.1.2.3:5000', 'https', ['10.0.0.0/8'], undefined],
    ['11.1.2.3:5000', 'https', ['10.0.0.0/8'], P],
    ['10.1.2.3:5000', 'https', ['10.1.2.3'], undefined],
    ['[fd00::5]:5000', 'https', ['fd00::5'], undefined],
    ['[fd00::5]:5000', 'https', ['fd00::/8'], undefined],
    ['REGISTRY.corp', 'https', ['registry.CORP'], undefined]
  ])('%s over %s with no-proxy %j: %s', (registry, scheme, noProxy, expected) => {
    expect(proxyFor(registry, scheme, {http: P, https: P, noProxy})).toBe(expected)
  })

  it('is direct without a proxy for the scheme', () => {
    expect(proxyFor('r.corp', 'http', {https: P, noProxy: []})).toBeUndefined()
    expect(proxyFor('r.corp', 'https', undefined)).toBeUndefined()
  })

  it('is refused on a Node whose agents take no proxy, in words that name no action input', () => {
    const proxies = {http: P, https: P, noProxy: ['direct.corp']}
    const refusal = (node: string): string => {
      try {
        return `used ${usableProxy('r.corp', 'https', proxies, node)}`
      } catch (e) {
        return errorMessage(e)
      }
    }
    expect(refusal('24.5.0')).toBe(`used ${P}`)
    expect(refusal('24.4.1')).toMatch(
      /^r\.corp is reached through the proxy .*, which Node .* cannot use/
    )
    expect(refusal('22.12.0')).not.toMatch(/push-method|input/)
    expect(usableProxy('direct.corp', 'https', proxies, '22.12.0')).toBeUndefined()
  })
})

describe('credentials an earlier docker login left', () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64')

  it.each<[string, string, object | undefined, ReturnType<typeof storedCredentials>]>([
    [
      'an auths entry',
      'reg.corp:5000',
      {auths: {'reg.corp:5000': {auth: b64('ci:p:w')}}},
      {kind: 'inline', username: 'ci', password: 'p:w'}
    ],
    [
      'an auths entry under a URL',
      'reg.corp',
      {auths: {'https://reg.corp/v2/': {auth: b64('ci:pw')}}},
      {kind: 'inline', username: 'ci', password: 'pw'}
    ],
    [
      'Docker Hub under its legacy URL',
      'docker.io',
      {auths: {'https://index.docker.io/v1/': {auth: b64('me:pw')}}},
      {kind: 'inline', username: 'me', password: 'pw'}
    ],
    [
      'the two fields',
      'reg.corp',
      {auths: {'reg.corp': {username: 'u', password: 'p'}}},
      {kind: 'inline', username: 'u', password: 'p'}
    ],
    [
      'a helper for the registry',
      'reg.corp',
      {credHelpers: {'reg.corp': 'ecr-login'}, auths: {'reg.corp': {auth: b64('a:b')}}},
      {kind: 'helper', helper: 'ecr-login'}
    ],
    [
      "the config's store",
      'reg.corp',
      {credsStore: 'pass', auths: {'reg.corp': {}}},
      {kind: 'helper', helper: 'pass'}
    ],
    ['a helper name that is not a name', 'reg.corp', {credsStore: '../../bin/sh'}, {kind: 'none'}],
    [
      "another registry's entry",
      'reg.corp',
      {auths: {'other.corp': {auth: b64('a:b')}}},
      {kind: 'none'}
    ],
    [
      'an entry without a password',
      'reg.corp',
      {auths: {'reg.corp': {auth: b64('nocolon')}}},
      {kind: 'none'}
    ],
    ['no file', 'reg.corp', undefined, {kind: 'none'}]
  ])('%s', (_what, registry, config, expected) => {
    expect(
      storedCredentials(config === undefined ? undefined : JSON.stringify(config), registry)
    ).toEqual(expected)
  })

  it('reads a malformed file as none', () => {
    expect(storedCredentials('{', 'reg.corp')).toEqual({kind: 'none'})
  })
})
