/**
 * A disk that never fills, in a disposable bookworm host with systemd whose Docker data root is a
 * 700 MB tmpfs: old and new images, a running container, stopped ones, a dangling image, an image
 * with keep-label and the action's own (stopped) registry. prune-age is a minute here: the old set
 * is built, the test sleeps past that minute, then the new set is built. Last, BuildKit's cache:
 * old entries over build-cache-cap go before any unused image, a younger one stays.
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {Box, RUNNER_USER} from './bed/box.js'
import {BOOT_TIMEOUT} from './bed/prepare.js'
import {errorLine, expectSuccess, type ActionRun} from './harness.js'

const AGE = 60
const base = {
  'docker-source': 'distro',
  'gpu-runtime': 'none',
  'start-registry': 'false',
  'prune-age': `${AGE}s`
}
let box: Box

/** Builds `tag` on the busybox image with `mib` MiB of random data (a label makes each build new). */
function build(tag: string, mib: number, label = ''): void {
  const dockerfile = [
    'FROM dgs-e2e/busybox',
    `LABEL dgs.build="${tag} ${Date.now()}" ${label}`,
    `RUN ["/bin/busybox", "dd", "if=/dev/urandom", "of=/blob", "bs=1M", "count=${mib}"]`
  ].join('\n')
  box.sh(`docker build -q -t ${tag} - >/dev/null`, {input: dockerfile})
}

/** The commands of a run that remove something from Docker. */
function removals(run: ActionRun): string[][] {
  return run.commands.filter(c => {
    const i = c.indexOf('docker')
    return i >= 0 && ['rm', 'rmi', 'builder'].includes(c[i + 1])
  })
}

function free(): number {
  return Number(box.sh('df -B1 --output=avail /var/lib/docker | tail -1').trim())
}

function images(): string[] {
  return box
    .sh("docker images --format '{{.Repository}}:{{.Tag}}'")
    .split('\n')
    .filter(Boolean)
    .sort()
}

function containers(): string[] {
  return box.sh("docker ps -a --format '{{.Names}}'").split('\n').filter(Boolean).sort()
}

beforeAll(() => {
  box = Box.start({suite: 'bookworm', state: 'engine', images: true, dataRoot: 'tmpfs:700m'})
  // The action's registry, stopped: never removed, nor its image.
  expectSuccess(box.run({...base, 'start-registry': 'true'}))
  box.sh('docker stop docker-gpu-setup-registry >/dev/null')
  // The old set.
  build('old/a:1', 30)
  build('old/c:1', 30)
  build('old/kept:1', 30, 'org.docker-gpu-setup.keep=yes')
  build('old/running:1', 30)
  build('old/b:1', 30)
  build('old/dangling:1', 20)
  build('old/dangling:1', 20) // the first build is now a dangling image
  build('old/stopped:1', 30)
  box.sh('docker run -d --name running old/running:1 /bin/busybox sleep 3600 >/dev/null')
  box.sh(
    'docker run --name stopped-old old/stopped:1 /bin/busybox dd if=/dev/urandom of=/rw bs=1M count=10 2>/dev/null'
  )
  box.sh(`sleep ${AGE + 2}`)
  // The new set: an image built now, and a container just made on an old image.
  build('new/fresh:1', 30)
  box.sh('docker run --name stopped-new old/b:1 /bin/busybox true')
}, BOOT_TIMEOUT)
afterAll(() => box?.remove())

describe('min-free-space on a data root that is filling up', () => {
  it('frees in order, the oldest first, and stops once enough is free', () => {
    // Enough for the stopped container, the dangling image and one 30 MiB image, not two.
    const want = free() + (10 + 20 + 30 - 8) * 2 ** 20
    // As a sudo user outside the docker group: every question and removal goes through sudo.
    const run = box.run({...base, 'min-free-space': `${want}B`}, {user: RUNNER_USER})
    expectSuccess(run)
    const direct = removals(run).filter(c => !c.slice(0, c.indexOf('docker')).includes('sudo'))
    expect(removals(run).length).toBeGreaterThan(0)
    expect(direct).toEqual([])
    expect(free()).toBeGreaterThanOrEqual(want)
    expect(Number(run.outputs['freed-bytes'])).toBeGreaterThan(55 * 2 ** 20)
    expect(containers()).toEqual(['docker-gpu-setup-registry', 'running', 'stopped-new'])
    const left = images()
    expect(left).not.toContain('old/a:1')
    expect(left).toContain('old/c:1')
    expect(left).toContain('old/stopped:1')
    expect(left).not.toContain('<none>:<none>')
    expect(run.summary).toContain('### Disk space')
    expect(run.summary).toMatch(/Before[\s\S]*TYPE +TOTAL +ACTIVE +SIZE +RECLAIMABLE/)
    expect(run.summary).toContain('container stopped-old')
    expect(run.summary).toContain('old/a:1 (')
  }, 180_000)

  it('a second run finds enough free and removes nothing', () => {
    const before = {images: images(), containers: containers()}
    const want = free() - 2 ** 20
    const run = box.run({...base, 'min-free-space': `${want}B`})
    expectSuccess(run)
    expect(run.outputs['freed-bytes']).toBe('0')
    expect(removals(run)).toEqual([])
    expect({images: images(), containers: containers()}).toEqual(before)
    expect(run.summary).toContain('| Disk space | ✅ unchanged |')
  }, 60_000)

  it('removes exactly what the rules allow, then fails naming what is missing and what holds it', () => {
    const run = box.run({...base, 'min-free-space': '100GB'})
    expect(run.code).toBe(1)
    expect(images()).toEqual([
      'dgs-e2e/busybox:latest',
      'new/fresh:1',
      'old/b:1',
      'old/kept:1',
      'old/running:1',
      'registry:3'
    ])
    expect(containers()).toEqual(['docker-gpu-setup-registry', 'running', 'stopped-new'])
    const error = errorLine(run)
    expect(error).toMatch(
      /^min-free-space: 100 GB must be free on \/var\/lib\/docker, [\d.]+ MB is after removing all the pruning rules allow \(freed [\d.]+ MB\): [\d.]+ GB missing\. The space is held by: /
    )
    for (const reason of [
      'images of running containers',
      "the action's registry images",
      'images labelled org.docker-gpu-setup.keep',
      `images used within prune-age (${AGE}s)`,
      'images of stopped containers kept'
    ]) {
      expect(error).toContain(reason)
    }
    // Again: nothing more is allowed, so nothing is removed, and it fails the same way.
    const again = box.run({...base, 'min-free-space': '100GB'})
    expect(again.code).toBe(1)
    expect(again.outputs['freed-bytes']).toBe('0')
    expect(removals(again)).toEqual([])
    expect(images()).toHaveLength(6)
  }, 180_000)
})

describe('build cache over build-cache-cap', () => {
  /** Builds with BuildKit: one cached step per marker, `mib` MiB each; the image is removed after. */
  function buildWithCache(tag: string, markers: string[], mib: number): void {
    const dockerfile = [
      'FROM dgs-e2e/busybox',
      ...markers.map(
        m => `RUN ["/bin/busybox", "dd", "if=/dev/urandom", "of=/${m}", "bs=1M", "count=${mib}"]`
      )
    ].join('\n')
    box.sh(
      `DOCKER_BUILDKIT=1 docker build -q -t ${tag} - >/dev/null && docker rmi ${tag} >/dev/null`,
      {
        input: dockerfile
      }
    )
  }

  /** BuildKit's cache records, by what made them (their description names the marker file). */
  function cacheRecords(): string[] {
    const df = JSON.parse(box.sh("docker system df -v --format '{{json .}}'")) as {
      BuildCache?: {Description?: string}[]
    }
    return (df.BuildCache ?? []).map(b => b.Description ?? '')
  }

  const has = (records: string[], marker: string): boolean =>
    records.some(d => d.includes(`of=/${marker} `))

  it('goes before any unused image: the entries over the cap older than prune-age, no younger one', () => {
    buildWithCache('cache/old:1', ['cache-old-1', 'cache-old-2'], 30)
    box.sh(`sleep ${AGE + 2}`)
    buildWithCache('cache/new:1', ['cache-new-1'], 20)
    const before = cacheRecords()
    for (const m of ['cache-old-1', 'cache-old-2', 'cache-new-1']) expect(has(before, m)).toBe(true)
    const imagesBefore = images()
    const want = free() + 30 * 2 ** 20
    const run = box.run({...base, 'min-free-space': `${want}B`, 'build-cache-cap': '10MB'})
    expectSuccess(run)
    expect(free()).toBeGreaterThanOrEqual(want)
    const after = cacheRecords()
    expect(has(after, 'cache-old-1') || has(after, 'cache-old-2')).toBe(false)
    expect(has(after, 'cache-new-1')).toBe(true)
    // The cache was enough: no image went.
    expect(images()).toEqual(imagesBefore)
    expect(removals(run)).toContainEqual(
      expect.arrayContaining(['builder', 'prune', '--keep-storage', '10000000', `until=${AGE}s`])
    )
    expect(run.summary).toContain('build cache over the 10.0 MB cap')
  }, 240_000)
})

describe('an image this job pushes, given by digest alone', () => {
  it('is kept under min-free-space pressure (other images go, by ID), and pushed', () => {
    // An image that only a digest names: pushed, untagged, and pulled again by its digest.
    build('digest/only:1', 30)
    box.sh('docker start docker-gpu-setup-registry >/dev/null')
    box.sh(
      'docker tag digest/only:1 localhost:5000/digest/only:1 && ' +
        'docker push -q localhost:5000/digest/only:1 >/dev/null'
    )
    const ref = box
      .sh("docker image inspect --format '{{index .RepoDigests 0}}' localhost:5000/digest/only:1")
      .trim()
    expect(ref).toMatch(/^localhost:5000\/digest\/only@sha256:[0-9a-f]{64}$/)
    box.sh(
      `docker rmi digest/only:1 localhost:5000/digest/only:1 >/dev/null; docker pull -q ${ref}`
    )
    const id = box.sh(`docker image inspect --format '{{.Id}} {{len .RepoTags}}' ${ref}`).trim()
    expect(id).toMatch(/^sha256:[0-9a-f]{64} 0$/)
    // prune-age 0: every image no rule keeps may go; 10 MiB short.
    const want = free() + 10 * 2 ** 20
    const run = box.run({
      ...base,
      'start-registry': 'true',
      'prune-age': '0',
      'min-free-space': `${want}B`,
      images: `${ref} => digest/pushed:1`
    })
    expectSuccess(run)
    expect(Number(run.outputs['freed-bytes'])).toBeGreaterThan(0)
    // Kept (the push tagged it for its target meanwhile).
    expect(box.sh(`docker image inspect --format '{{.Id}}' ${ref}`).trim()).toBe(id.split(' ')[0])
    expect(run.outputs.digests).toMatch(/^localhost:5000\/digest\/pushed:1@sha256:[0-9a-f]{64}$/)
    // Every image removal named image IDs, never a tag.
    const rmi = removals(run).filter(c => c.includes('rmi'))
    expect(rmi.length).toBeGreaterThan(0)
    for (const c of rmi) {
      for (const arg of c.slice(c.indexOf('rmi') + 1)) expect(arg).toMatch(/^sha256:[0-9a-f]{64}$/)
    }
  }, 240_000)
})
