import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {createServer} from 'node:http'
import {tmpdir} from 'node:os'
import * as path from 'node:path'
import {afterAll, describe, expect, it, jest} from '@jest/globals'
import type {HostInfo} from '../../src/host.js'
import type {DiskSettings} from '../../src/phases/disk/inputs.js'
import {
  dockerTime,
  parseContainers,
  parseDfVerbose,
  parseImages,
  type ImageFact
} from '../../src/phases/disk/inventory.js'
import {
  namesImage,
  normalRef,
  planDisk,
  removalsAndKept,
  type DiskFacts,
  type Inventory
} from '../../src/phases/disk/plan.js'
import {formatBytes, parseDuration, parseSize} from '../../src/docker/sizes.js'
import type {Outputs} from '../../src/outputs.js'
import type {PhaseReport, UnboundContext} from '../../src/phases/pipeline.js'
import {parseOsRelease} from '../../src/system/os-release.js'
import {fakeCore} from './fake-core.js'
import {FakeRunner} from './fake-runner.js'

const core = fakeCore(() => ({}))
jest.unstable_mockModule('@actions/core', () => core.module)
const {diskPhase} = await import('../../src/phases/disk/phase.js')
const {stage} = await import('../../src/phases/pipeline.js')

const fixture = (name: string): string => readFileSync(`__fixtures__/docker/${name}`, 'utf8')
const SIZES = parseDfVerbose(fixture('system-df-v.json'))
const INVENTORY: Inventory = {
  containers: parseContainers(fixture('container-inspect.json'), SIZES),
  images: parseImages(fixture('image-inspect.json'), SIZES),
  buildCache: SIZES.buildCache,
  volumes: SIZES.volumes
}
const at = (t: string): number => Date.parse(`2026-12-01T${t}Z`)

function settings(o: Partial<DiskSettings> = {}): DiskSettings {
  return {
    minFreeSpace: 1e9,
    pruneAge: {seconds: 60, text: '1m'},
    buildCacheCap: 10e9,
    keepLabel: {key: 'org.docker-gpu-setup.keep'},
    keepImages: [{ref: 'registry:3', why: "the action's registry images"}],
    managedLabel: 'org.docker-gpu-setup.managed',
    registryData: [],
    ...o
  }
}
/** An image removal's images by their tags (by ID when they have none), for reading. */
const named = (inv: Inventory, ids: string[]): string[] =>
  ids.flatMap(id => {
    const tags = inv.images.find(i => i.id === id)?.tags ?? []
    return tags.length > 0 ? tags : [id]
  })
const labels = (s: DiskSettings, inv: Inventory, now: number) =>
  removalsAndKept(s, inv, now).removals.map(r =>
    r.kind === 'image'
      ? named(inv, r.ids).join(' ')
      : r.kind === 'container'
        ? r.label.split(' ')[1]
        : r.kind
  )
/** The image ID a tag of the sample names. */
const idOf = (tag: string): string => INVENTORY.images.find(i => i.tags.includes(tag))?.id ?? ''
/** An image of its own, for rules that need no sample. */
const img = (
  id: string,
  tag: string,
  parent: string,
  t: string,
  more: Partial<ImageFact> = {}
): ImageFact => ({
  id,
  tags: tag ? [tag] : [],
  digests: [],
  parent,
  created: at(t),
  lastTagged: 0,
  labels: {},
  size: 1e6,
  ...more
})

describe('sizes and ages', () => {
  it.each([
    ['20GB', 20e9],
    ['1.5 TB', 1.5e12],
    ['500MiB', 500 * 2 ** 20],
    ['20.97MB', 20_970_000],
    ['0B', 0],
    ['12kB', 12_000],
    ['20G', undefined],
    ['20', undefined],
    ['GB', undefined]
  ])('parseSize(%j) = %j', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes)
  })

  it.each([
    ['72h', 259_200],
    ['1h30m', 5400],
    ['7d', 604_800],
    ['2w', 1_209_600],
    ['90s', 90],
    ['0', 0],
    ['3 days', undefined],
    ['h', undefined],
    ['-1h', undefined]
  ])('parseDuration(%j) = %j', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds)
  })

  it('prints bytes as Docker does, in powers of 1000', () => {
    expect([0, 999, 12_345, 31_460_000, 2.5e9, 1.2e13].map(formatBytes)).toEqual([
      '0 B',
      '999 B',
      '12.3 kB',
      '31.5 MB',
      '2.50 GB',
      '12.0 TB'
    ])
  })
})

describe("Docker's own listings (Docker 20.10.24 samples)", () => {
  it('reads containers with their state, image, labels and times', () => {
    const byName = new Map(INVENTORY.containers.map(c => [c.name, c]))
    expect([...byName.keys()].sort()).toEqual([
      'docker-gpu-setup-registry',
      'running',
      'stopped-new',
      'stopped-old'
    ])
    expect(byName.get('running')).toMatchObject({state: 'running', finished: 0})
    expect(byName.get('stopped-old')).toMatchObject({
      state: 'exited',
      finished: at('01:43:09.818'),
      size: 2_100_000
    })
    expect(byName.get('docker-gpu-setup-registry')?.labels).toHaveProperty([
      'org.docker-gpu-setup.managed'
    ])
  })

  it('reads images with tags, parents, label, times and the size only they hold', () => {
    const fresh = INVENTORY.images.find(i => i.tags.includes('new/fresh:1')) as ImageFact
    expect(fresh).toMatchObject({
      created: at('01:42:29.629'),
      lastTagged: at('01:42:29.636'),
      size: 31_460_000
    })
    expect(fresh.parent).toMatch(/^sha256:86f6d726/)
    const busybox = INVENTORY.images.find(i => i.tags.includes('dgs-e2e/busybox:latest'))
    // Loaded, never tagged here: Docker's zero time.
    expect(busybox).toMatchObject({parent: '', lastTagged: 0})
    expect(INVENTORY.images.filter(i => i.tags.length === 0)).toHaveLength(7)
    expect(dockerTime('0001-01-01T00:00:00Z')).toBe(0)
  })
})

describe('the removals the rules allow, in order', () => {
  it('ten minutes on: stopped containers oldest first, the dangling image, then images least recently used first', () => {
    const s = settings()
    expect(labels(s, INVENTORY, at('01:53:10'))).toEqual([
      'stopped-new',
      'stopped-old',
      'sha256:48002f41a266de31365d2e53d0b557bde66af79374d5453cf31b6bf8f9d7f4ca',
      'new/fresh:1',
      'old/dangling:1',
      'old/b:1'
    ])
    // Never: the running container's image, the registry's, the labelled one, the base they share.
    const kept = removalsAndKept(s, INVENTORY, at('01:53:10')).kept
    expect(kept.sort((a, b) => a.reason.localeCompare(b.reason))).toEqual([
      {reason: 'images labelled org.docker-gpu-setup.keep', count: 1, bytes: 31_460_000},
      {reason: 'images of running containers', count: 1, bytes: 31_460_000},
      {reason: "the action's registry images", count: 1, bytes: 22_850_000}
    ])
  })

  it('half a minute on: only what is older than prune-age; an image a kept container uses stays', () => {
    const s = settings()
    expect(labels(s, INVENTORY, at('01:43:40'))).toEqual(['stopped-new', 'new/fresh:1'])
    const kept = removalsAndKept(s, INVENTORY, at('01:43:40')).kept.map(k => k.reason)
    expect(kept).toContain('images of stopped containers kept')
    expect(kept).toContain('images used within prune-age (1m)')
  })

  it("keeps this job's images to push, named as written, and any keep-label given as key=value", () => {
    const s = settings({
      keepImages: [
        {ref: 'docker.io/library/registry:3', why: "the action's registry images"},
        {ref: 'new/fresh:1', why: "this job's images to push"}
      ],
      keepLabel: {key: 'dgs.build', value: 'nothing has this'}
    })
    expect(labels(s, INVENTORY, at('01:53:10'))).not.toContain('new/fresh:1')
    expect(labels(s, INVENTORY, at('01:53:10'))).not.toContain('registry:3')
    expect(normalRef('ubuntu')).toBe('ubuntu:latest')
    expect(normalRef('docker.io/library/ubuntu:22.04')).toBe('ubuntu:22.04')
  })

  it('removes an image after the images built on it, and keeps the base of a kept image', () => {
    const inv: Inventory = {
      containers: [],
      buildCache: 0,
      volumes: 0,
      images: [
        img('base', 'base:1', '', '00:00:00'),
        img('mid', '', 'base', '00:10:00'),
        img('child', 'child:1', 'mid', '00:20:00'),
        img('other', 'other:1', '', '00:05:00'),
        img('young', 'young:1', 'other', '01:00:00')
      ]
    }
    const removals = removalsAndKept(settings(), inv, at('01:00:30')).removals
    expect(removals.map(r => (r.kind === 'image' ? named(inv, r.ids) : []))).toEqual([
      ['child:1', 'base:1']
    ])
    expect(removalsAndKept(settings(), inv, at('01:00:30')).kept).toEqual([
      {reason: 'base layers of kept images', count: 1, bytes: 1e6},
      {reason: 'images used within prune-age (1m)', count: 1, bytes: 1e6}
    ])
  })

  const DIGEST = `sha256:${'d'.repeat(64)}`
  const ID = `sha256:${'e'.repeat(64)}`
  it.each([
    ['app:1', true],
    ['docker.io/library/app:1', true],
    ['app', false],
    [`localhost:5000/team/app@${DIGEST}`, true],
    [`localhost:5000/team/app:any@${DIGEST}`, true],
    [`team/app@${DIGEST}`, false],
    [`localhost:5000/team/app@sha256:${'f'.repeat(64)}`, false],
    [ID, true],
    ['e'.repeat(64), true],
    ['e'.repeat(12), true],
    [`sha256:${'e'.repeat(12)}`, true],
    ['e'.repeat(11), false],
    ['f'.repeat(12), false]
  ])(
    'namesImage(%j) of an image tagged app:1, pulled by digest and with its ID: %j',
    (ref, yes) => {
      const image = img(ID, 'app:1', '', '00:00:00', {
        digests: [`localhost:5000/team/app@${DIGEST}`]
      })
      expect(namesImage(ref, image)).toBe(yes)
    }
  )

  it('keeps an image this job pushes that has only a digest (pulled by it), and plans another as unused, not dangling', () => {
    const inv: Inventory = {
      containers: [],
      buildCache: 0,
      volumes: 0,
      images: [
        img('sha256:pushed', '', '', '00:00:00', {digests: [`localhost:5000/app@${DIGEST}`]}),
        img('sha256:other', '', '', '00:00:00', {digests: [`other@${DIGEST}`]}),
        img('sha256:dangling', '', '', '00:00:00')
      ]
    }
    const s = settings({
      keepImages: [{ref: `localhost:5000/app@${DIGEST}`, why: "this job's images to push"}]
    })
    const {removals, kept} = removalsAndKept(s, inv, at('01:00:00'))
    expect(removals.map(r => [r.tier, r.label.split(' (')[0]])).toEqual([
      [1, 'dangling dangling'],
      [3, `other@${DIGEST}`]
    ])
    expect(kept).toEqual([{reason: "this job's images to push", count: 1, bytes: 1e6}])
  })

  it.each([
    [10e9, '10.0 GB'],
    [2 * 2 ** 30, '2.15 GB'],
    [0, '0 B']
  ])('prunes build cache over the cap (%d: %s), before unused images', (cap, shown) => {
    const inv: Inventory = {
      containers: [],
      images: [],
      buildCache: cap + 3e9,
      volumes: 5e9
    }
    const {removals, kept} = removalsAndKept(settings({buildCacheCap: cap}), inv, at('01:00:00'))
    expect(removals).toEqual([
      {
        tier: 2,
        kind: 'build-cache',
        keep: cap,
        label: `build cache over the ${shown} cap`,
        bytes: 3e9
      }
    ])
    expect(kept).toEqual([
      {reason: 'volumes (never pruned)', count: 0, bytes: 5e9},
      ...(cap > 0 ? [{reason: `build cache up to the ${shown} cap`, count: 0, bytes: cap}] : [])
    ])
  })

  it('keeps build cache at or under the cap', () => {
    const inv: Inventory = {containers: [], images: [], buildCache: 2e9, volumes: 0}
    const {removals, kept} = removalsAndKept(settings({buildCacheCap: 2e9}), inv, at('01:00:00'))
    expect(removals).toEqual([])
    expect(kept).toEqual([{reason: 'build cache up to the 2.00 GB cap', count: 0, bytes: 2e9}])
  })
})

describe('planDisk', () => {
  const facts = (o: Partial<DiskFacts>): DiskFacts => ({
    wanted: true,
    dockerUp: true,
    dataRoot: '/var/lib/docker',
    free: 2e9,
    now: at('01:53:10'),
    ...o
  })

  it('plans nothing without min-free-space, or with enough free', () => {
    expect(planDisk(facts({wanted: false}), settings()).steps).toEqual([])
    const enough = planDisk(facts({}), settings())
    expect(enough.steps).toEqual([])
    expect(enough.found).toBe('2.00 GB free on /var/lib/docker (min-free-space 1.00 GB)')
  })

  it('lists the removals as steps, one per kind in order, and says how much the rules allow', () => {
    const plan = planDisk(facts({free: 0.9e9, inventory: INVENTORY}), settings())
    expect(plan.found).toBe(
      '900 MB free on /var/lib/docker (min-free-space 1.00 GB): 100 MB missing; the pruning rules allow about 75.5 MB'
    )
    expect(plan.steps.map(s => s.description.split('\n')[0])).toEqual([
      'remove stopped containers until 100 MB more are free:',
      'remove images until 100 MB more are free:'
    ])
    expect(plan.steps[1].description).toContain(
      '\n    new/fresh:1 (31.5 MB, last used 2026-12-01 01:42)'
    )
  })
})

describe('the disk phase on a recording runner', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'dgs-disk-'))
  // The Engine API of this machine is never asked: the socket named here does not exist.
  const savedHost = process.env.DOCKER_HOST
  process.env.DOCKER_HOST = `unix://${dir}/no-docker.sock`
  afterAll(() => {
    rmSync(dir, {recursive: true, force: true})
    if (savedHost === undefined) delete process.env.DOCKER_HOST
    else process.env.DOCKER_HOST = savedHost
  })
  const host: HostInfo = {
    os: parseOsRelease('ID=debian\n'),
    isRoot: true,
    user: 'root',
    systemd: true,
    tempDir: dir,
    identity: {names: [], addresses: []}
  }
  const ids = (json: string) => (JSON.parse(json) as {Id: string}[]).map(i => i.Id).join('\n')
  const deleted = (JSON.parse(fixture('image-inspect.json')) as {Id: string}[])
    .map(i => `Deleted: ${i.Id}`)
    .join('\n')

  function run(minFreeSpace: number) {
    const runner = new FakeRunner([
      [['docker', 'info'], {stdout: `${dir}\n`}],
      [['docker', 'system', 'df', '-v'], {stdout: fixture('system-df-v.json')}],
      [['docker', 'system', 'df'], {stdout: fixture('system-df.txt')}],
      [['docker', 'ps'], {stdout: ids(fixture('container-inspect.json'))}],
      [['docker', 'images'], {stdout: ids(fixture('image-inspect.json'))}],
      [['docker', 'container', 'inspect'], {stdout: fixture('container-inspect.json')}],
      [['docker', 'image', 'inspect'], {stdout: fixture('image-inspect.json')}],
      [['docker', 'rm'], {stdout: ids(fixture('container-inspect.json'))}],
      [['docker', 'rmi'], {stdout: deleted}],
      [['du'], {exitCode: 1}]
    ])
    const outputs: Outputs = {}
    const warnings: string[] = []
    const ctx: UnboundContext<DiskSettings> = {
      inputs: settings({minFreeSpace}),
      host,
      runner,
      outputs,
      warn: m => void warnings.push(m),
      remember: () => undefined
    }
    const report: PhaseReport = {
      phase: '',
      status: 'failed',
      facts: [],
      found: '',
      changes: [],
      result: ''
    }
    return {runner, outputs, warnings, report, done: stage(diskPhase, ctx).run(false, report)}
  }

  it('asks the Engine API for the data root when its socket answers, and runs no command', async () => {
    const socket = path.join(dir, 'api.sock')
    const server = createServer((req, res) => {
      res.writeHead(req.url === '/info' ? 200 : 404, {'Content-Type': 'application/json'})
      res.end(JSON.stringify({DockerRootDir: dir}))
    })
    await new Promise<void>(resolve => server.listen(socket, resolve))
    process.env.DOCKER_HOST = `unix://${socket}`
    try {
      const r = run(1)
      await r.done
      expect(r.runner.lines()).toEqual([])
      expect(r.outputs.disk?.dataRoot).toBe(dir)
    } finally {
      process.env.DOCKER_HOST = `unix://${dir}/no-docker.sock`
      await new Promise(resolve => server.close(resolve))
    }
  })

  it('with enough free and no socket at hand, asks docker info and reads the free space only', async () => {
    const r = run(1)
    await r.done
    expect(r.runner.lines()).toEqual(['docker info --format {{.DockerRootDir}}'])
    expect(r.outputs.disk).toMatchObject({dataRoot: dir, freedBytes: 0, removed: []})
    expect(r.report.status).toBe('unchanged')
  })

  it('short of space: removes in order, never with --force, then fails naming what is missing and what holds it', async () => {
    // Ten minutes after the sample was taken: everything in it is older than prune-age.
    const now = jest.spyOn(Date, 'now').mockReturnValue(at('01:53:10'))
    const r = run(1e18)
    await expect(r.done).rejects.toThrow(
      /^min-free-space: 1000000 TB must be free on \/tmp\/dgs-disk-\w+, [\d.]+ \w+ is after removing all the pruning rules allow \(freed [\d.]+ k?B\): 1000000 TB missing\. The space is held by: (images of running containers 31\.5 MB|images labelled org\.docker-gpu-setup\.keep 31\.5 MB|the action's registry images 22\.9 MB|; )+; and files outside Docker\.$/
    )
    now.mockRestore()
    const removing = r.runner.lines().filter(l => / (rm|rmi) /.test(l))
    expect(removing).toEqual([
      expect.stringMatching(/^docker rm \w{64} \w{64}$/),
      'docker rmi sha256:48002f41a266de31365d2e53d0b557bde66af79374d5453cf31b6bf8f9d7f4ca',
      // By ID, never by a tag: another job may have moved the tag to an image of its own.
      `docker rmi ${idOf('new/fresh:1')} ${idOf('old/dangling:1')} ${idOf('old/b:1')}`
    ])
    expect(r.outputs.disk?.removed).toHaveLength(6)
    expect(r.outputs.disk?.dfBefore).toBe(fixture('system-df.txt').trimEnd())
    expect(r.outputs.disk?.dfAfter).toBe(fixture('system-df.txt').trimEnd())
    expect(r.runner.lines().join('\n')).not.toContain('--force')
  })
})
