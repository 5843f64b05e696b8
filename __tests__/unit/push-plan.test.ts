import {describe, expect, it} from '@jest/globals'
import {parseRegistryAddress} from '../../src/docker/reference.js'
import {parseImageList} from '../../src/phases/push/image-list.js'
import {planPush, type LocalImage, type PushFacts} from '../../src/phases/push/plan.js'

const registry = parseRegistryAddress('localhost:5000')
const D1 = `sha256:${'1'.repeat(64)}`
const D2 = `sha256:${'2'.repeat(64)}`
const targets = parseImageList('app:1\ntool:2 => team/tool:v2', [], registry)

/** app:1 was pushed before (it carries a digest for its target); tool:2 never was. */
const LOCALS = new Map<string, LocalImage>([
  ['app:1', {id: 'sha256:a', repoDigests: [`localhost:5000/app@${D1}`], size: 100}],
  ['tool:2', {id: 'sha256:t', repoDigests: [], size: 200}]
])

function facts(o: Partial<PushFacts> = {}): PushFacts {
  return {dockerUp: true, targets, locals: LOCALS, remote: new Map(), ...o}
}
const login = {username: 'ci', password: 'pw'}

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
      ['push app:1 as localhost:5000/app:1', 'push tool:2 as localhost:5000/team/tool:v2'],
      'Docker is not running yet'
    ],
    [
      'the registry holds neither',
      facts(),
      false,
      ['push app:1 as localhost:5000/app:1', 'push tool:2 as localhost:5000/team/tool:v2'],
      '2 target(s); 0 already in the registry with the same digest'
    ],
    [
      'the registry holds app:1 at the digest the image has',
      facts({remote: new Map([['localhost:5000/app:1', D1]])}),
      false,
      ['push tool:2 as localhost:5000/team/tool:v2'],
      '2 target(s); 1 already in the registry with the same digest'
    ],
    [
      'the registry holds another digest for app:1',
      facts({remote: new Map([['localhost:5000/app:1', D2]])}),
      false,
      ['push app:1 as localhost:5000/app:1', 'push tool:2 as localhost:5000/team/tool:v2'],
      '2 target(s); 0 already in the registry with the same digest'
    ],
    [
      'credentials and something to push: a login first',
      facts(),
      true,
      [
        'log in to localhost:5000 as ci (per-job DOCKER_CONFIG)',
        'push app:1 as localhost:5000/app:1',
        'push tool:2 as localhost:5000/team/tool:v2'
      ],
      '2 target(s); 0 already in the registry with the same digest'
    ],
    [
      'credentials but nothing to push: no login',
      facts({
        targets: targets.slice(0, 1),
        remote: new Map([['localhost:5000/app:1', D1]])
      }),
      true,
      [],
      '1 target(s); 1 already in the registry with the same digest'
    ]
  ])('%s', (_name, f, withLogin, steps, found) => {
    const plan = planPush(f, {registry, login: withLogin ? login : undefined})
    expect(plan.steps.map(s => s.description)).toEqual(steps)
    expect(plan.found).toBe(found)
    expect(plan.login).toBe(steps[0]?.startsWith('log in') ?? false)
    expect(plan.warnings).toEqual([])
  })

  it('reports an unchanged target with the registry’s digest and the local size', () => {
    const plan = planPush(facts({remote: new Map([['localhost:5000/app:1', D1]])}), {registry})
    expect(plan.unchanged).toEqual([
      {source: 'app:1', target: 'localhost:5000/app:1', digest: D1, size: 100, status: 'unchanged'}
    ])
    expect(plan.todo.map(t => t.target)).toEqual(['localhost:5000/team/tool:v2'])
  })

  it('refuses before any push when a source is not on the host, naming each source once with a line it is on', () => {
    const three = parseImageList('app:1\nghost:1\nghost:1 => other:1', [], registry)
    expect(() => planPush(facts({targets: three}), {registry})).toThrow(
      'images: ghost:1 (line 3) is not on this host; nothing was pushed. Build or pull it before this step.'
    )
    const two = parseImageList('a:1\nb:1', [], registry)
    expect(() => planPush(facts({targets: two, locals: new Map()}), {registry})).toThrow(
      'images: a:1 (line 1), b:1 (line 2) are not on this host; nothing was pushed. Build or pull them before this step.'
    )
  })
})
