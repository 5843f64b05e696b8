import {describe, expect, it} from '@jest/globals'
import {htpasswdMatches, renderHtpasswd} from '../../src/phases/registry/htpasswd.js'
import {
  LABEL_MANAGED,
  LABEL_SPEC,
  containerAction,
  isThisHost,
  mirrorSpec,
  registryBind,
  registryFragments,
  registryPort,
  registrySpec,
  runArgv,
  wantsLocalRegistry
} from '../../src/phases/registry/spec.js'
import {parseWith, type RawOverrides} from './inputs-helper.js'

const inputs = (o: RawOverrides = {}) => parseWith(o, {'/c.pem': 'file', '/k.pem': 'file'}).registry
const me = {names: ['gpu-01'], addresses: ['127.0.0.1', '10.1.2.3', 'fe80::1']}

describe('where the registry runs', () => {
  it.each([
    ['localhost:5000', true],
    ['127.0.0.1:5000', true],
    ['[::1]:5000', true],
    ['gpu-01:5000', true],
    ['10.1.2.3:5000', true],
    ['registry.example.com', false],
    ['10.9.9.9:5000', false]
  ])('%s is this host: %s', (registry, expected) => {
    expect(isThisHost(inputs({registry}).registry.host, me)).toBe(expected)
  })

  it.each([
    ['the defaults alone (a GPU-only setup)', {}, false],
    ['images to push', {images: 'app:1'}, true],
    ['images that are only comments', {images: '# none yet'}, false],
    ['a registry other than the default', {registry: 'localhost:5001'}, true],
    ['this host by name', {registry: 'gpu-01:5000'}, true],
    ['basic auth', {'registry-htpasswd': 'ci:secret'}, true],
    ['TLS', {'registry-tls-cert': '/c.pem', 'registry-tls-key': '/k.pem'}, true],
    ['a Docker Hub mirror', {'registry-mirror': 'true'}, true],
    ['images, but a registry elsewhere', {registry: 'registry.example.com', images: 'a'}, false]
  ])('start-registry: auto with %s: %s', (_what, raw, expected) => {
    expect(wantsLocalRegistry(inputs(raw), me)).toBe(expected)
  })

  it('start-registry forces either way', () => {
    expect(
      wantsLocalRegistry(inputs({registry: 'registry.example.com', 'start-registry': 'true'}), me)
    ).toBe(true)
    expect(wantsLocalRegistry(inputs({'start-registry': 'false'}), me)).toBe(false)
  })

  it('binds loopback registries to 127.0.0.1, others to all addresses, unless told', () => {
    expect(registryBind(inputs())).toBe('127.0.0.1')
    expect(registryBind(inputs({registry: 'gpu-01:5000'}))).toBe('0.0.0.0')
    expect(registryBind(inputs({'registry-bind': '10.1.2.3'}))).toBe('10.1.2.3')
    expect(registryPort(inputs({registry: 'gpu-01.lan'}))).toBe(80)
    expect(
      registryPort(
        inputs({
          registry: 'gpu-01.lan',
          'registry-tls-cert': '/c.pem',
          'registry-tls-key': '/k.pem'
        })
      )
    ).toBe(443)
  })
})

describe('container spec', () => {
  it('configures through REGISTRY_* variables, data on the host, restart always', () => {
    const spec = registrySpec(inputs(), 'sha256:img', {})
    expect(runArgv(spec)).toEqual([
      'docker',
      'run',
      '--detach',
      '--name',
      'docker-gpu-setup-registry',
      '--restart',
      'always',
      '--publish',
      '127.0.0.1:5000:5000',
      '--label',
      `${LABEL_MANAGED}=true`,
      '--label',
      `${LABEL_SPEC}=${spec.hash}`,
      '--volume',
      '/var/lib/docker-gpu-setup/registry:/var/lib/registry',
      '--env',
      'REGISTRY_HTTP_ADDR=0.0.0.0:5000',
      '--env',
      'REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/var/lib/registry',
      '--env',
      'REGISTRY_STORAGE_DELETE_ENABLED=true',
      '--env',
      'OTEL_TRACES_EXPORTER=none',
      'registry:3'
    ])
  })

  it('adds htpasswd auth and TLS files, read-only', () => {
    const spec = registrySpec(
      inputs({
        'registry-htpasswd': 'ci:pw',
        'registry-tls-cert': '/c.pem',
        'registry-tls-key': '/k.pem'
      }),
      'sha256:img',
      {htpasswd: 'h', cert: 'c', key: 'k'}
    )
    expect(spec.env).toMatchObject({
      REGISTRY_AUTH: 'htpasswd',
      REGISTRY_AUTH_HTPASSWD_PATH: '/auth/htpasswd',
      REGISTRY_HTTP_TLS_CERTIFICATE: '/certs/tls.crt'
    })
    expect(spec.mounts.filter(m => m.readonly).map(m => m.target)).toEqual([
      '/auth/htpasswd',
      '/certs/tls.crt',
      '/certs/tls.key'
    ])
    expect(JSON.stringify(spec)).not.toContain('pw')
  })

  it('hashes everything that matters: same spec, same hash; any change, another', () => {
    const a = registrySpec(inputs(), 'sha256:img', {})
    expect(registrySpec(inputs(), 'sha256:img', {}).hash).toBe(a.hash)
    expect(registrySpec(inputs(), 'sha256:other', {}).hash).not.toBe(a.hash)
    expect(registrySpec(inputs({'registry-bind': '0.0.0.0'}), 'sha256:img', {}).hash).not.toBe(
      a.hash
    )
    expect(registrySpec(inputs({'registry-data': '/srv/reg'}), 'sha256:img', {}).hash).not.toBe(
      a.hash
    )
    const auth = inputs({'registry-htpasswd': 'ci:pw'})
    expect(registrySpec(auth, 'sha256:img', {htpasswd: 'x'}).hash).not.toBe(
      registrySpec(auth, 'sha256:img', {htpasswd: 'y'}).hash
    )
  })

  it('runs a mirror as a second container caching the upstream', () => {
    expect(mirrorSpec(inputs(), 'i')).toBeUndefined()
    const spec = mirrorSpec(inputs({'registry-mirror': 'true'}), 'i')
    expect(spec?.env.REGISTRY_PROXY_REMOTEURL).toBe('https://registry-1.docker.io')
    expect(spec?.mounts[0].source).toBe('/var/lib/docker-gpu-setup/registry-mirror')
    expect(spec?.hostPort).toBe(5001)
  })

  it('keeps, starts, creates or recreates, and refuses a container it did not make', () => {
    const spec = registrySpec(inputs(), 'i', {})
    const ours = {[LABEL_MANAGED]: 'true', [LABEL_SPEC]: spec.hash}
    expect(containerAction(spec, undefined)).toBe('create')
    expect(containerAction(spec, {id: '1', running: true, labels: ours})).toBe('keep')
    expect(containerAction(spec, {id: '1', running: false, labels: ours})).toBe('start')
    expect(
      containerAction(spec, {id: '1', running: true, labels: {...ours, [LABEL_SPEC]: 'old'}})
    ).toBe('recreate')
    expect(() => containerAction(spec, {id: '1', running: true, labels: {}})).toThrow(
      'A container named docker-gpu-setup-registry exists that docker-gpu-setup did not create; it was left alone.'
    )
  })
})

describe('daemon.json fragments', () => {
  it('adds a plain-HTTP non-loopback local registry to insecure-registries, and the mirror', () => {
    expect(registryFragments(inputs(), me)).toEqual([])
    expect(registryFragments(inputs({registry: 'gpu-01:5000'}), me)).toEqual([
      {source: 'insecure-registry', value: {'insecure-registries': ['gpu-01:5000']}}
    ])
    expect(
      registryFragments(
        inputs({
          registry: 'gpu-01:5000',
          'registry-tls-cert': '/c.pem',
          'registry-tls-key': '/k.pem'
        }),
        me
      )
    ).toEqual([])
    expect(
      registryFragments(inputs({registry: 'registry.example.com', 'insecure-registry': 'true'}), me)
    ).toEqual([
      {source: 'insecure-registry', value: {'insecure-registries': ['registry.example.com']}}
    ])
    expect(registryFragments(inputs({'registry-mirror': 'true'}), me)).toEqual([
      {source: 'registry-mirror', value: {'registry-mirrors': ['http://127.0.0.1:5001']}}
    ])
  })
})

describe('htpasswd', () => {
  it('writes bcrypt entries and recognises them again whatever the salt', () => {
    const entries = [
      {user: 'ci', password: 's3cret'},
      {user: 'bot', password: 'p:w'}
    ]
    const text = renderHtpasswd(entries)
    expect(text).toMatch(/^ci:\$2[aby]\$10\$.{53}\nbot:\$2[aby]\$10\$.{53}\n$/)
    expect(text).not.toContain('s3cret')
    expect(htpasswdMatches(text, entries)).toBe(true)
    expect(htpasswdMatches(text, [{user: 'ci', password: 'other'}, entries[1]])).toBe(false)
    expect(htpasswdMatches(text, entries.slice(0, 1))).toBe(false)
    expect(htpasswdMatches('ci:plain\nbot:plain\n', entries)).toBe(false)
  })
})
