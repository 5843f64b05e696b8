import {describe, expect, it} from '@jest/globals'
import {parseRegistryAddress} from '../../src/docker/reference.js'
import {parseImageList} from '../../src/phases/push/image-list.js'
import {
  layerCompression,
  planPush,
  type LocalImage,
  type PushFacts,
  type RemoteImage
} from '../../src/phases/push/plan.js'
import type {RegistryPool} from '../../src/phases/push/registries.js'
import {DEFAULT_REGISTRY_CONFIG} from '../../src/registry-client/transport.js'

const registry = parseRegistryAddress('localhost:5000')
/** The inputs the planner reads besides login and push-method, at their defaults. */
const base = {registry, pushCompression: 'auto', registryLocal: true} as const
const D1 = `sha256:${'1'.repeat(64)}`
const D2 = `sha256:${'2'.repeat(64)}`
const APP = `sha256:${'a'.repeat(64)}`
const targets = parseImageList('app:1\ntool:2 => team/tool:v2', [], registry)

/** app:1 was pushed by docker push once (it carries a digest for its target); tool:2 never was. */
const LOCALS = new Map<string, LocalImage>([
  ['app:1', {id: APP, repoDigests: [`localhost:5000/app@${D1}`], size: 100, layers: []}],
  ['tool:2', {id: 'sha256:t', repoDigests: [], size: 200, layers: []}]
])

function held(o: Partial<RemoteImage>): Map<string, RemoteImage> {
  return new Map([['localhost:5000/app:1', {digest: D2, layers: [], bytes: 42, ...o}]])
}

function facts(o: Partial<PushFacts> = {}): PushFacts {
  return {
    dockerUp: true,
    containerdStore: false,
    registryConfig: DEFAULT_REGISTRY_CONFIG,
    targets,
    locals: LOCALS,
    remote: new Map(),
    // The planner never opens a registry client.
    registries: {} as RegistryPool,
    ...o
  }
}
const login = {username: 'ci', password: 'pw'}
const BOTH = ['push app:1 as localhost:5000/app:1', 'push tool:2 as localhost:5000/team/tool:v2']
const API = 'sent through the registry API'

describe('planPush', () => {
  it.each<[string, PushFacts, boolean, string[], string]>([
    [
      'nothing to push',
      facts({targets: [], dockerUp: false}),
      false,
      [],
      'no images to push (images is empty)'
    ],
    [
      'Docker not running yet (a dry run before the engine exists)',
      facts({dockerUp: false, locals: new Map()}),
      false,
      BOTH,
      'Docker is not running yet'
    ],
    [
      'the registry holds neither',
      facts(),
      false,
      BOTH,
      `2 target(s); 0 already in the registry with the same image; ${API}`
    ],
    [
      'the registry holds app:1 with the same config (the classic store’s image ID)',
      facts({remote: held({config: APP})}),
      false,
      ['push tool:2 as localhost:5000/team/tool:v2'],
      `2 target(s); 1 already in the registry with the same image; ${API}`
    ],
    [
      'the registry holds app:1 at the digest an earlier docker push recorded',
      facts({remote: held({digest: D1})}),
      false,
      ['push tool:2 as localhost:5000/team/tool:v2'],
      `2 target(s); 1 already in the registry with the same image; ${API}`
    ],
    [
      'the registry holds app:1 at the manifest the containerd store names the image by',
      facts({remote: held({digest: APP}), containerdStore: true}),
      false,
      ['push tool:2 as localhost:5000/team/tool:v2'],
      '2 target(s); 1 already in the registry with the same image; sent by docker push'
    ],
    [
      'the registry holds another image for app:1',
      facts({remote: held({config: `sha256:${'c'.repeat(64)}`})}),
      false,
      BOTH,
      `2 target(s); 0 already in the registry with the same image; ${API}`
    ],
    [
      'credentials and something to push: a login first',
      facts(),
      true,
      ['log in to localhost:5000 as ci (per-job DOCKER_CONFIG)', ...BOTH],
      `2 target(s); 0 already in the registry with the same image; ${API}`
    ],
    [
      'credentials but nothing to push: no login',
      facts({targets: targets.slice(0, 1), remote: held({config: APP})}),
      true,
      [],
      '1 target(s); 1 already in the registry with the same image'
    ]
  ])('%s', (_name, f, withLogin, steps, found) => {
    const plan = planPush(f, {...base, login: withLogin ? login : undefined, pushMethod: 'auto'})
    expect(plan.steps.map(s => s.description)).toEqual(steps)
    expect(plan.found).toBe(found)
    expect(plan.login).toBe(steps[0]?.startsWith('log in') ?? false)
    expect(plan.warnings).toEqual([])
  })

  it.each<[string, boolean, 'auto' | 'docker', string]>([
    ['the classic store, auto', false, 'auto', 'registry-api'],
    ['the containerd store, auto', true, 'auto', 'docker-push'],
    ['the classic store, push-method docker', false, 'docker', 'docker-push']
  ])('%s: pushes by %s', (_name, containerdStore, pushMethod, way) => {
    expect(planPush(facts({containerdStore}), {...base, pushMethod}).way).toBe(way)
  })

  it('reports an unchanged target with the registry’s digest and its size there', () => {
    const plan = planPush(facts({remote: held({config: APP})}), {...base, pushMethod: 'auto'})
    expect(plan.unchanged).toEqual([
      {source: 'app:1', target: 'localhost:5000/app:1', digest: D2, size: 42, status: 'unchanged'}
    ])
    expect(plan.todo.map(t => t.target)).toEqual(['localhost:5000/team/tool:v2'])
  })

  it('refuses before any push when a source is not on the host, naming each source once with a line it is on', () => {
    const three = parseImageList('app:1\nghost:1\nghost:1 => other:1', [], registry)
    const inputs = {...base, pushMethod: 'auto' as const}
    expect(() => planPush(facts({targets: three}), inputs)).toThrow(
      'images: ghost:1 (line 3) is not on this host; nothing was pushed. Build or pull it before this step.'
    )
    const two = parseImageList('a:1\nb:1', [], registry)
    expect(() => planPush(facts({targets: two, locals: new Map()}), inputs)).toThrow(
      'images: a:1 (line 1), b:1 (line 2) are not on this host; nothing was pushed. Build or pull them before this step.'
    )
  })

  it('chooses per registry the API sends layers to, and says why; docker push gets none', () => {
    const mixed = parseImageList('app:1\ntool:2 => ghcr.io/org/tool:2', [], registry)
    const plan = planPush(facts({targets: mixed}), {...base, pushMethod: 'auto'})
    expect(plan.compression).toEqual([
      {
        registry: 'localhost:5000',
        compression: 'none',
        why: 'a registry on this host, on loopback'
      },
      {
        registry: 'ghcr.io',
        compression: 'gzip',
        why: 'a registry elsewhere: its layers cross a network'
      }
    ])
    expect(
      planPush(facts({targets: mixed}), {...base, pushMethod: 'docker', pushCompression: 'gzip'})
        .compression
    ).toEqual([])
  })

  it('warns that the containerd store’s images cannot go uncompressed', () => {
    const plan = planPush(facts({containerdStore: true}), {
      ...base,
      pushMethod: 'auto',
      pushCompression: 'none'
    })
    expect(plan.way).toBe('docker-push')
    expect(plan.warnings).toEqual([
      'push-compression: none is not possible here: images in the containerd image store go by docker push, which sends layers compressed as they are stored'
    ])
  })
})

describe('layerCompression', () => {
  const at = (text: string, registryLocal: boolean) => ({
    registry: parseRegistryAddress(text),
    registryLocal
  })
  it.each<[string, string, ReturnType<typeof at>, 'auto' | 'gzip' | 'none', string, string]>([
    [
      'loopback by name',
      'localhost:5000',
      at('localhost:5000', false),
      'auto',
      'none',
      'a registry on this host, on loopback'
    ],
    [
      'loopback by address',
      '127.0.0.1:5001',
      at('localhost:5000', false),
      'auto',
      'none',
      'a registry on this host, on loopback'
    ],
    [
      'IPv6 loopback',
      '[::1]:5000',
      at('localhost:5000', false),
      'auto',
      'none',
      'a registry on this host, on loopback'
    ],
    [
      'the registry this run runs, by a LAN name',
      'ci-1.lan:5000',
      at('ci-1.lan:5000', true),
      'auto',
      'none',
      'the registry this run runs on this host'
    ],
    [
      'the same name, run elsewhere',
      'ci-1.lan:5000',
      at('ci-1.lan:5000', false),
      'auto',
      'gzip',
      'a registry elsewhere: its layers cross a network'
    ],
    [
      'another registry while this run runs one',
      'ghcr.io',
      at('ci-1.lan:5000', true),
      'auto',
      'gzip',
      'a registry elsewhere: its layers cross a network'
    ],
    [
      'another port of a run registry’s host',
      'ci-1.lan:5001',
      at('ci-1.lan:5000', true),
      'auto',
      'gzip',
      'a registry elsewhere: its layers cross a network'
    ],
    [
      'forced gzip on loopback',
      'localhost:5000',
      at('localhost:5000', true),
      'gzip',
      'gzip',
      'as push-compression says'
    ],
    [
      'forced none elsewhere',
      'ghcr.io',
      at('localhost:5000', true),
      'none',
      'none',
      'as push-compression says'
    ]
  ])('%s', (_name, target, where, pushCompression, compression, why) => {
    expect(layerCompression(target, {...where, pushCompression})).toEqual({
      registry: target,
      compression,
      why
    })
  })
})
