/**
 * Images the action pushes through the registry API pull and run on every engine the bed has:
 * pushed from Docker 20.10 (bookworm) with each push-compression (auto: uncompressed layers to its
 * loopback registry; gzip), the registry's data then moved to a host of each shape
 * (Docker 26.1 on trixie, Docker 28.5 on forky with and without the containerd image store), where
 * a registry is started on it and each image is pulled and run. Each engine also pushes an image of
 * its own (its `docker save` layout differs) and pulls it back.
 */
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {Box} from './bed/box.js'
import {sh} from './bed/outer.js'
import {BOOT_TIMEOUT} from './bed/prepare.js'
import {expectSuccess, type ActionRun} from './harness.js'

const base = {'docker-source': 'distro', 'gpu-runtime': 'none', 'registry-data': '/srv/data'}
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const SNAPSHOTTER = JSON.stringify({features: {'containerd-snapshotter': true}})

/** Pushed from bookworm: busybox and a marker (layers worth gzip), and a layer of random bytes. */
const FROM_BOOKWORM = ['dgs-e2e/app1:1', 'dgs-e2e/random:1']
/** The same two again with push-compression gzip, under other names. */
const GZIP_FROM_BOOKWORM = [
  'dgs-e2e/app1:1 => dgs-e2e/app1-gzip:1',
  'dgs-e2e/random:1 => dgs-e2e/random-gzip:1'
]
const TAR = 'application/vnd.oci.image.layer.v1.tar'
const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip'
/** What every engine pulls and runs of the pusher's images, and what each prints. */
const PUSHED = ['app1', 'random', 'app1-gzip', 'random-gzip']
const PRINTED = ['app1', 'random', 'app1', 'random']

/**
 * An image of one layer whose first MiB is random bytes (so it is sent as is, not gzip), made with
 * docker import from the test images' busybox; it prints `marker`.
 */
function importRandom(box: Box, tag: string, marker: string): void {
  box.sh(
    'd=$(mktemp -d); mkdir -p $d/bin; id=$(docker create dgs-e2e/busybox:latest); ' +
      'docker cp $id:/bin/busybox $d/bin/busybox; docker rm $id >/dev/null; ' +
      `dd if=/dev/urandom of=$d/blob bs=1M count=3 status=none; echo ${marker} > $d/marker; ` +
      `tar -C $d -c blob bin marker | docker import --change 'CMD ["/bin/busybox","cat","/marker"]' - ${tag} >/dev/null; ` +
      'rm -rf $d'
  )
}

/** Layer media types of the manifest the registry holds for a repository:tag on localhost:5000. */
function layerTypes(box: Box, repoTag: string): string[] {
  const [repo, tag] = repoTag.split(':')
  const m = JSON.parse(
    box.sh(`curl -sf -H 'Accept: ${MANIFEST}' http://localhost:5000/v2/${repo}/manifests/${tag}`)
  ) as {mediaType: string; layers: {mediaType: string}[]}
  expect(m.mediaType).toBe(MANIFEST)
  return m.layers.map(l => l.mediaType)
}

/** Pulls an image from the box's registry (nothing of it local first) and runs it; its output. */
function pullAndRun(box: Box, repoTag: string): string {
  const ref = `localhost:5000/${repoTag}`
  box.sh(`docker rmi -f ${ref} >/dev/null 2>&1 || true; docker pull -q ${ref} >/dev/null`)
  return box.sh(`docker run --rm ${ref}`).trim()
}

function rows(run: ActionRun): {target: string; status: string}[] {
  return JSON.parse(run.outputs.images) as {target: string; status: string}[]
}

/** Copies the registry's data of one box into another (through this machine). */
function moveData(from: Box, to: Box, dir: string): void {
  sh(`rm -rf ${dir}/data && docker cp ${from.name}:/srv/data ${dir}/data`)
  to.sh('mkdir -p /srv')
  sh(`docker cp ${dir}/data ${to.name}:/srv/data`)
}

describe('images pushed through the registry API pull and run on every engine', () => {
  let pusher: Box
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'dgs-e2e-data-'))
    pusher = Box.start({suite: 'bookworm', state: 'engine', images: true})
    importRandom(pusher, 'dgs-e2e/random:1', 'random')
  }, BOOT_TIMEOUT)
  afterAll(() => {
    pusher?.remove()
    rmSync(dir, {recursive: true, force: true})
  })

  /**
   * On `box`, with the pusher's registry data: the box pushes its own dgs-e2e/app<n> and a random
   * layer image; then every image, the pusher's and its own, is pulled and run: their outputs.
   */
  function pullsAndPushes(box: Box, n: number, inputs: Record<string, string> = {}): string[] {
    moveData(pusher, box, dir)
    importRandom(box, `dgs-e2e/random${n}:1`, `random${n}`)
    const run = box.run({...base, ...inputs, images: `dgs-e2e/app${n}:1\ndgs-e2e/random${n}:1`})
    expectSuccess(run)
    expect(rows(run).map(r => r.status)).toEqual(['pushed', 'pushed'])
    // Through the registry API (the classic store), to its loopback registry: uncompressed.
    if (inputs['daemon-config'] === undefined) {
      expect(layerTypes(box, `dgs-e2e/app${n}:1`)).toEqual([TAR, TAR])
    }
    return [...PUSHED, `app${n}`, `random${n}`].map(name => pullAndRun(box, `dgs-e2e/${name}:1`))
  }

  it('Docker 20.10 (bookworm): pushes uncompressed layers (auto, loopback) and gzip ones; the images pull and run', () => {
    const run = pusher.run({...base, images: FROM_BOOKWORM.join('\n')})
    expectSuccess(run)
    expect(rows(run).map(r => r.status)).toEqual(['pushed', 'pushed'])
    expect(run.stdout).toContain(
      'Layers to localhost:5000: uncompressed (a registry on this host, on loopback)'
    )
    expect(layerTypes(pusher, 'dgs-e2e/app1:1')).toEqual([TAR, TAR])
    expect(layerTypes(pusher, 'dgs-e2e/random:1')).toEqual([TAR])
    const gz = pusher.run({
      ...base,
      'push-compression': 'gzip',
      images: GZIP_FROM_BOOKWORM.join('\n')
    })
    expectSuccess(gz)
    expect(rows(gz).map(r => r.status)).toEqual(['pushed', 'pushed'])
    expect(layerTypes(pusher, 'dgs-e2e/app1-gzip:1')).toEqual([GZIP, GZIP])
    // Random bytes gain nothing from gzip: sent as is, under the digest the auto push gave them.
    expect(layerTypes(pusher, 'dgs-e2e/random-gzip:1')).toEqual([TAR])
    // Unchanged on a rerun, whichever compression the registry holds the layers in.
    const again = pusher.run({
      ...base,
      images: [...FROM_BOOKWORM, ...GZIP_FROM_BOOKWORM].join('\n')
    })
    expectSuccess(again)
    expect(rows(again).map(r => r.status)).toEqual(Array(4).fill('unchanged'))
    pusher.sh('docker rmi -f dgs-e2e/app1:1 dgs-e2e/random:1 >/dev/null')
    expect(PUSHED.map(name => pullAndRun(pusher, `dgs-e2e/${name}:1`))).toEqual(PRINTED)
    // Stopped, so its data can be copied whole.
    pusher.sh('docker stop docker-gpu-setup-registry >/dev/null')
  }, 300_000)

  it('Docker 26.1 (trixie): pulls and runs them, and pushes from its own OCI export', () => {
    const box = Box.start({suite: 'trixie', state: 'engine', images: true})
    try {
      expect(pullsAndPushes(box, 2)).toEqual([...PRINTED, 'app2', 'random2'])
    } finally {
      box.remove()
    }
  }, 600_000)

  it.each([
    ['classic image store', {}],
    ['containerd image store', {'daemon-config': SNAPSHOTTER}]
  ])(
    'Docker 28.5 (forky, no init), %s: pulls and runs them, and pushes its own',
    (_name, store: Record<string, string>) => {
      const box = Box.start({suite: 'forky', state: 'engine'})
      try {
        // The action starts dockerd (and switches the store); the test images load into that store.
        expectSuccess(box.run({...base, ...store, 'start-registry': 'false'}))
        box.loadImages()
        expect(pullsAndPushes(box, 3, store)).toEqual([...PRINTED, 'app3', 'random3'])
      } finally {
        box.remove()
      }
    },
    600_000
  )
})
