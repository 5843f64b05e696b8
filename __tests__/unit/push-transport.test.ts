import {describe, expect, it} from '@jest/globals'
import {
  certFiles,
  DEFAULT_REGISTRY_CONFIG,
  isSecureRegistry,
  parseRegistryConfig,
  registryHostname,
  schemesFor
} from '../../src/phases/push/transport.js'

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
