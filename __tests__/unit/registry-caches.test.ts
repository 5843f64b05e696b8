import {describe, expect, it} from '@jest/globals'
import {canonical} from '../../src/docker/daemon-fragment.js'
import {planRegistry, type RegistryFacts} from '../../src/phases/registry/plan.js'
import {
  LABEL_MANAGED,
  LABEL_SPEC,
  cacheAddresses,
  cacheSpecs,
  mirrorSpec,
  registryFragments,
  runArgv,
  sha256
} from '../../src/phases/registry/spec.js'
import {ME as me, settingsWith, type RawOverrides} from './inputs-helper.js'

const TOKEN = 'nvapi-s3cret'
const CACHES: RawOverrides = {
  'registry-caches': 'nvcr.io, http://10.0.0.5:5000',
  'registry-cache-credentials': `nvcr.io $oauthtoken:${TOKEN}`
}
const inputs = (o: RawOverrides = {}) => settingsWith({...CACHES, ...o}).registry

/** Docker runs and no container exists yet; the local registry is not wanted (start-registry false). */
function bare(f: Partial<RegistryFacts> = {}): RegistryFacts {
  return {
    me,
    wanted: false,
    dockerUp: true,
    imageId: 'sha256:img',
    htpasswdOk: true,
    certOk: true,
    fileHashes: {},
    dataDirs: {
      '/var/lib/docker-gpu-setup/registry-cache-nvcr.io': false,
      '/var/lib/docker-gpu-setup/registry-cache-10.0.0.5-5000': false
    },
    portHolders: {},
    caches: {},
    ...f
  }
}

/** The same host once the caches run as `o` asks. */
function running(o: RawOverrides = {}): RegistryFacts {
  const caches = Object.fromEntries(
    cacheSpecs(inputs(o), 'sha256:img').map(s => [
      s.name,
      {
        id: s.name,
        running: true,
        labels: {[LABEL_MANAGED]: 'true', [LABEL_SPEC]: s.hash},
        hostPort: s.hostPort
      }
    ])
  )
  const dirs = Object.fromEntries(Object.keys(bare().dataDirs).map(d => [d, true]))
  return bare({caches, dataDirs: dirs})
}

describe('pull-through caches of registry-caches', () => {
  it('run whatever start-registry says, each its own container, port and data folder', () => {
    const plan = planRegistry(bare(), inputs({'start-registry': 'false'}))
    expect(plan.registry).toBeUndefined()
    expect(plan.steps.map(s => s.description)).toEqual([
      'create /var/lib/docker-gpu-setup/registry-cache-nvcr.io, /var/lib/docker-gpu-setup/registry-cache-10.0.0.5-5000',
      'create the pull-through cache of nvcr.io container (127.0.0.1:5002, data kept in /var/lib/docker-gpu-setup/registry-cache-nvcr.io)',
      'create the pull-through cache of http://10.0.0.5:5000 container (127.0.0.1:5003, data kept in /var/lib/docker-gpu-setup/registry-cache-10.0.0.5-5000)'
    ])
    expect(plan.caches).toEqual({
      'docker-gpu-setup-cache-nvcr.io': 'create',
      'docker-gpu-setup-cache-10.0.0.5-5000': 'create'
    })
  })

  it('plan nothing once they run as configured; a new image recreates them', () => {
    const plan = planRegistry(running(), inputs())
    expect(plan.steps).toEqual([])
    expect(plan.found).toBe(
      'not started: nothing asks for one (no images to push, no auth, TLS or mirror; start-registry: true runs localhost:5000 anyway); 2 of 2 pull-through cache(s) running as configured'
    )
    const newImage = planRegistry({...running(), imageId: undefined}, inputs())
    expect(Object.values(newImage.caches)).toEqual(['recreate', 'recreate'])
  })

  it('are recreated when the credentials change, and the new token never shows in a step', () => {
    const plan = planRegistry(
      running(),
      inputs({'registry-cache-credentials': 'nvcr.io $oauthtoken:nvapi-new'})
    )
    expect(plan.caches['docker-gpu-setup-cache-nvcr.io']).toBe('recreate')
    expect(plan.caches['docker-gpu-setup-cache-10.0.0.5-5000']).toBe('keep')
    expect(JSON.stringify(plan.steps)).not.toContain('nvapi')
  })

  it('refuse a port another process holds, naming the input to change', () => {
    expect(() =>
      planRegistry(bare({portHolders: {5003: 'process "nginx",pid=7,fd=6'}}), inputs())
    ).toThrow(
      'Port 5003 is taken by process "nginx",pid=7,fd=6: the pull-through cache of http://10.0.0.5:5000 cannot publish on it. Stop that, or choose another port (registry-cache-port).'
    )
  })

  it('take the upstream’s credentials and the proxies from a root-only file, never argv', () => {
    const [nvcr, internal] = cacheSpecs(
      inputs({'http-proxy': 'http://ci:pw@proxy:3128'}),
      'sha256:img'
    )
    expect(nvcr.env).toEqual({
      REGISTRY_HTTP_ADDR: '0.0.0.0:5000',
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/var/lib/registry',
      REGISTRY_PROXY_REMOTEURL: 'https://nvcr.io',
      OTEL_TRACES_EXPORTER: 'none'
    })
    expect(nvcr.envFile?.path).toBe(
      '/etc/docker-gpu-setup/registry/env/docker-gpu-setup-cache-nvcr.io.env'
    )
    expect(nvcr.envText).toContain(
      `REGISTRY_PROXY_USERNAME=$oauthtoken\nREGISTRY_PROXY_PASSWORD=${TOKEN}\n`
    )
    expect(nvcr.envText).toContain('HTTP_PROXY=http://ci:pw@proxy:3128\n')
    expect(nvcr.envText).not.toContain('HTTPS_PROXY')
    expect(internal.envText).not.toContain('REGISTRY_PROXY_USERNAME')
    expect(internal.envText).toContain('no_proxy=localhost,')
    expect(runArgv(nvcr).join(' ')).not.toMatch(/nvapi|pw@/)
  })

  it('bind loopback, and are never added to registry-mirrors (only the Docker Hub mirror is)', () => {
    const s = inputs({'registry-mirror': 'true', 'start-registry': 'true'})
    expect(registryFragments(s, me)).toEqual([
      {source: 'registry-mirror', value: {'registry-mirrors': ['http://127.0.0.1:5001']}}
    ])
    expect(cacheAddresses(s)).toEqual({
      'nvcr.io': 'localhost:5002',
      'http://10.0.0.5:5000': 'localhost:5003'
    })
    const argv = runArgv(cacheSpecs(s, 'sha256:img')[0])
    expect(argv).toContain('127.0.0.1:5002:5000')
    expect(argv).toContain('--env-file')
    expect(argv.join(' ')).not.toContain(TOKEN)
  })
})

describe('the Docker Hub mirror', () => {
  it('keeps the spec (and hash) it had when no proxy is set, so an upgrade recreates nothing', () => {
    const spec = mirrorSpec(settingsWith({'registry-mirror': 'true'}).registry, 'i')!
    const before = {
      name: 'docker-gpu-setup-mirror',
      image: 'registry:3',
      imageId: 'i',
      bind: '127.0.0.1',
      hostPort: 5001,
      env: {
        REGISTRY_HTTP_ADDR: '0.0.0.0:5000',
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/var/lib/registry',
        REGISTRY_PROXY_REMOTEURL: 'https://registry-1.docker.io',
        OTEL_TRACES_EXPORTER: 'none'
      },
      mounts: [
        {
          source: '/var/lib/docker-gpu-setup/registry-mirror',
          target: '/var/lib/registry',
          readonly: false
        }
      ],
      fileHashes: {}
    }
    expect(spec.hash).toBe(sha256(JSON.stringify(canonical(before))))
    expect(runArgv(spec)).not.toContain('--env-file')
  })

  it('fetches through the proxies when they are set (a new spec: recreated once)', () => {
    const spec = mirrorSpec(
      settingsWith({'registry-mirror': 'true', 'https-proxy': 'http://proxy:3128'}).registry,
      'i'
    )!
    expect(spec.envText).toContain('HTTPS_PROXY=http://proxy:3128\n')
    expect(spec.envText).toContain('NO_PROXY=localhost,127.0.0.0/8,::1,gpu-01,10.1.2.3\n')
    expect(spec.envFile?.hash).toBe(sha256(spec.envText!))
  })
})
