import {randomBytes} from 'node:crypto'
import {gunzipSync, gzipSync} from 'node:zlib'
import {afterEach, beforeEach, describe, expect, it} from '@jest/globals'
import {MEDIA} from '../../src/registry-client/manifest.js'
import {RegistryClient} from '../../src/registry-client/client.js'
import {RegistryError} from '../../src/registry-client/http.js'
import {cliExporter} from '../../src/system/docker-images.js'
import {
  placeFolder,
  RegistryMemory,
  uploadImage,
  type Sent,
  type UploadJob
} from '../../src/phases/push/uploader.js'
import {FakeRegistry, FakeStorage} from './fake-registry.js'
import {FakeRunner} from './fake-runner.js'
import {dockerSave, image, layer, type SavedImage} from './save-archive.js'

/** A base layer of text (worth gzip) and a top layer of random bytes (not worth it). */
const base = layer({'etc/os-release': 'ID=debian\n'.repeat(20_000), 'bin/sh': 'x'.repeat(50_000)})
const big = layer({'data/weights.bin': randomBytes(1_500_000)})
const other = layer({'data/other.bin': randomBytes(200_000)})

let reg: FakeRegistry
let client: RegistryClient
beforeEach(async () => {
  reg = await new FakeRegistry().start()
  client = new RegistryClient({host: reg.host, schemes: [{scheme: 'http', verify: false}], cas: []})
})
afterEach(async () => {
  client.close()
  await reg.stop()
})

function job(img: SavedImage, tags: [string, string][]): UploadJob {
  return {
    id: img.id,
    layers: img.diffIds,
    tags: tags.map(([repository, tag]) => ({repository, tag})),
    known: new Map()
  }
}

function runnerFor(...saves: [SavedImage, Buffer][]): FakeRunner {
  const r = new FakeRunner()
  for (const [img, archive] of saves) r.streams.push([['docker', 'save', img.id], archive])
  return r
}

const counts = (): Sent => ({layers: 0, gzipped: 0, bytes: 0})

/** Uploads `img` as app:1, exported through the runner's `docker save`. */
const uploadApp = (runner: FakeRunner, img: SavedImage, mem = new RegistryMemory(client)) =>
  uploadImage(mem, job(img, [['app', '1']]), cliExporter(runner), counts())
const saves = (r: FakeRunner): number => r.lines().filter(l => l.startsWith('docker save')).length
const layerUploads = (): number => reg.layerUploads().length

/** The manifest the registry holds for repo:tag, and each layer's bytes uncompressed. */
function held(repo: string, tag: string) {
  const m = JSON.parse(reg.manifests.get(`${repo}:${tag}`)?.body.toString() ?? 'null') as {
    mediaType: string
    config: {digest: string; size: number}
    layers: {mediaType: string; digest: string; size: number}[]
  }
  const layers = m.layers.map(l => {
    const blob = reg.blobs.get(l.digest) as Buffer
    return l.mediaType === MEDIA.layerGzip ? gunzipSync(blob) : blob
  })
  return {m, layers}
}

describe.each(['v1', 'oci'] as const)('the uploader, reading a %s docker save archive', layout => {
  it('sends each layer once, gzip only where it pays, and puts one OCI manifest per tag', async () => {
    const img = image([base, big])
    const runner = runnerFor([img, dockerSave(img, layout)])
    const mem = new RegistryMemory(client)
    const sent = counts()
    const r = await uploadImage(
      mem,
      job(img, [
        ['team/app', '1'],
        ['team/app', 'main'],
        ['mirror/app', '1']
      ]),
      cliExporter(runner),
      sent
    )
    const {m, layers} = held('team/app', '1')
    expect(m.mediaType).toBe(MEDIA.ociManifest)
    expect(m.config).toEqual({mediaType: MEDIA.ociConfig, digest: img.id, size: img.config.length})
    expect(m.layers.map(l => l.mediaType)).toEqual([MEDIA.layerGzip, MEDIA.layerTar])
    expect(m.layers[1].digest).toBe(img.diffIds[1])
    expect(layers.map(l => l.equals(img.layers[layers.indexOf(l)]))).toEqual([true, true])
    expect(reg.blobs.get(img.id)?.equals(img.config)).toBe(true)
    // Every tag holds the same manifest; the second repository got its blobs by mounts.
    for (const [repo, tag] of [
      ['team/app', 'main'],
      ['mirror/app', '1']
    ]) {
      expect(reg.manifests.get(`${repo}:${tag}`)?.body.toString()).toBe(JSON.stringify(m))
    }
    expect(reg.lines().filter(l => l.startsWith('POST /v2/mirror/app'))).toHaveLength(3)
    expect(sent).toEqual({layers: 2, gzipped: 1, bytes: m.layers[0].size + m.layers[1].size})
    expect(r.size).toBe(img.config.length + m.layers[0].size + m.layers[1].size)
    expect(r.digest).toMatch(/^sha256:[0-9a-f]{64}$/)
    expect(saves(runner)).toBe(1)
  })

  it('reads nothing from the daemon when the registry holds every blob (another tag, another run)', async () => {
    const img = image([base, big])
    const runner = runnerFor([img, dockerSave(img, layout)])
    const first = await uploadApp(runner, img)
    // What the push phase learns from the tag's manifest and config: which blob each layer is.
    const j = job(img, [
      ['app', '2'],
      ['other', '1']
    ])
    held('app', '1').m.layers.forEach((l, i) =>
      j.known.set(img.diffIds[i], {blob: l, repository: 'app'})
    )
    const sent = counts()
    const again = await uploadImage(new RegistryMemory(client), j, cliExporter(runner), sent)
    expect(again.digest).toBe(first.digest)
    expect(saves(runner)).toBe(1)
    expect(sent.layers).toBe(0)
  })

  it('sends a layer two images share once, and links it for the second', async () => {
    const a = image([base, big], 'a')
    const b = image([base, other], 'b')
    const runner = runnerFor([a, dockerSave(a, layout)], [b, dockerSave(b, layout)])
    const mem = new RegistryMemory(client)
    await Promise.all([
      uploadImage(mem, job(a, [['a', '1']]), cliExporter(runner), counts()),
      uploadImage(mem, job(b, [['b', '1']]), cliExporter(runner), counts())
    ])
    expect(layerUploads()).toBe(3)
    expect(held('b', '1').layers[0].equals(base)).toBe(true)
  })

  it('sends every layer as is to a registry on this host: the OCI tar type, digest = diff_id', async () => {
    const img = image([base, big])
    const runner = runnerFor([img, dockerSave(img, layout)])
    const sent = counts()
    await uploadImage(
      new RegistryMemory(client, 'none'),
      job(img, [['app', '1']]),
      cliExporter(runner),
      sent
    )
    const {m, layers} = held('app', '1')
    expect(m.layers).toEqual(
      img.layers.map((l, i) => ({
        mediaType: MEDIA.layerTar,
        digest: img.diffIds[i],
        size: l.length
      }))
    )
    expect(layers.map((l, i) => l.equals(img.layers[i]))).toEqual([true, true])
    expect(sent).toEqual({layers: 2, gzipped: 0, bytes: base.length + big.length})
  })

  it('sends each layer as is in one PUT under its diff_id, known before its first byte', async () => {
    const img = image([base, big, other])
    const runner = runnerFor([img, dockerSave(img, layout)])
    await uploadImage(
      new RegistryMemory(client, 'none'),
      job(img, [['app', '1']]),
      cliExporter(runner),
      counts()
    )
    // A v1 folder read before the folder below it is hashed on the way (a PATCH, then a PUT).
    const puts = reg.layerUploads().filter(u => u.method === 'PUT').length
    const hashed = reg.lines().filter(l => l.startsWith('PATCH')).length
    expect(reg.layerUploads()).toHaveLength(3)
    expect(puts + hashed).toBe(3)
    // OCI names every layer by digest; a v1 base folder is always placed.
    expect(puts).toBeGreaterThanOrEqual(layout === 'oci' ? 3 : 1)
    expect(held('app', '1').layers.map((l, i) => l.equals(img.layers[i]))).toEqual([
      true,
      true,
      true
    ])
  })

  it('in a new run, sends only the layer the registry lacks: the base it holds is left unread', async () => {
    const first = image([base, big], 'first')
    const second = image([base, other], 'second')
    const runner = runnerFor(
      [first, dockerSave(first, layout)],
      [second, dockerSave(second, layout)]
    )
    await uploadImage(
      new RegistryMemory(client, 'none'),
      job(first, [['app', '1']]),
      cliExporter(runner),
      counts()
    )
    const sent = counts()
    await uploadImage(
      new RegistryMemory(client, 'none'),
      job(second, [['app', '2']]),
      cliExporter(runner),
      sent
    )
    expect(sent).toEqual({layers: 1, gzipped: 0, bytes: other.length})
    expect(layerUploads()).toBe(3)
    expect(held('app', '2').layers.map((l, i) => l.equals(second.layers[i]))).toEqual([true, true])
  })

  it('finds a layer sent as is from a later gzip push, under its diff_id, and sends nothing', async () => {
    const img = image([base, big])
    const runner = runnerFor([img, dockerSave(img, layout)])
    await uploadImage(
      new RegistryMemory(client, 'none'),
      job(img, [['app', '1']]),
      cliExporter(runner),
      counts()
    )
    // A later run to the same registry with gzip finds each layer under its own digest.
    const sent = counts()
    await uploadImage(
      new RegistryMemory(client, 'gzip'),
      job(img, [['app', '2']]),
      cliExporter(runner),
      sent
    )
    expect(sent.layers).toBe(0)
    expect(saves(runner)).toBe(1)
    expect(layerUploads()).toBe(2)
  })

  it('a layer upload the registry refused for a while fails as transient; the retry reads the image again and lands it', async () => {
    const img = image([base, big])
    const runner = runnerFor([img, dockerSave(img, layout)])
    const mem = new RegistryMemory(client, 'none')
    // The first upload's commit (one PUT carrying the layer, or the PUT after a PATCH) gets a 503.
    reg.failures.push({match: /^PUT \/v2\/app\/blobs\/uploads\//, left: 1})
    const e = await uploadApp(runner, img, mem).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(RegistryError)
    expect((e as RegistryError).transient).toBe(true)
    // A body sent once cannot be sent again: the retry starts a new export.
    await uploadApp(runner, img, mem)
    expect(saves(runner)).toBe(2)
    expect(held('app', '1').layers.map((l, i) => l.equals(img.layers[i]))).toEqual([true, true])
  })

  it('after a manifest the registry refused for a while, a retry sends no layer again', async () => {
    const img = image([base, big])
    const runner = runnerFor([img, dockerSave(img, layout)])
    const mem = new RegistryMemory(client)
    reg.failures.push({match: /^PUT \/v2\/app\/manifests\//, left: 1})
    const e = await uploadApp(runner, img, mem).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(RegistryError)
    expect((e as RegistryError).transient).toBe(true)
    await uploadApp(runner, img, mem)
    expect(layerUploads()).toBe(2)
    expect(saves(runner)).toBe(1)
  })
})

describe('a Docker 20.10 export: each folder placed in the chain by the parent its json names', () => {
  it.each([
    [
      'the base, then the folder above it',
      [
        ['a', undefined],
        ['b', 'a']
      ],
      {a: 0, b: 1}
    ],
    [
      'a folder read before the one below it stays unplaced',
      [
        ['b', 'a'],
        ['a', undefined]
      ],
      {a: 0}
    ],
    ['a parent of an empty name is the base', [['a', '']], {a: 0}]
  ] as [string, [string, string | undefined][], Record<string, number>][])(
    '%s',
    (_, folders, placed) => {
      const chain = new Map<string, number>()
      for (const [folder, parent] of folders) {
        placeFolder(chain, folder, Buffer.from(JSON.stringify({id: folder, parent})))
      }
      expect(Object.fromEntries(chain)).toEqual(placed)
    }
  )

  it('places nothing from a json it cannot read, or one that is not the folder’s', () => {
    const chain = new Map<string, number>()
    for (const text of ['not json', 'null', '[]', '{"parent": ""}', '{"id": "y"}']) {
      placeFolder(chain, 'x', Buffer.from(text))
    }
    expect([...chain]).toEqual([])
  })

  it('a folder whose json misplaces it is refused by the registry, which checks the digest', async () => {
    const img = image([base, big])
    // The folders' json name the chain upside down: a layer goes under another's diff_id, and
    // the registry, hashing what it got, refuses it.
    const runner = runnerFor([img, dockerSave(img, 'v1', true)])
    const e = await uploadImage(
      new RegistryMemory(client, 'none'),
      job(img, [['app', '1']]),
      cliExporter(runner),
      counts()
    ).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(RegistryError)
    expect(String(e)).toMatch(/400.*digest did not match/)
    expect(reg.manifests.size).toBe(0)
  })

  it('with gzip, a layer goes under the diff_id it hashes to, never the one its folder claims', async () => {
    const text = layer({'usr/share/doc/README': 'Debian GNU/Linux\n'.repeat(30_000)})
    const img = image([base, text])
    await uploadImage(
      new RegistryMemory(client, 'gzip'),
      job(img, [['app', '1']]),
      cliExporter(runnerFor([img, dockerSave(img, 'v1', true)])),
      counts()
    )
    // Both gzip (the registry checks only the compressed digest), each in its own place.
    const {m, layers} = held('app', '1')
    expect(m.layers.map(l => l.mediaType)).toEqual([MEDIA.layerGzip, MEDIA.layerGzip])
    expect(layers.map((l, i) => l.equals(img.layers[i]))).toEqual([true, true])
  })
})

describe('the uploader', () => {
  it('uses what the registry held for the tag before (an earlier build) instead of sending it', async () => {
    const img = image([base, big])
    const earlier = gzipSync(base, {level: 9})
    const gz = reg.seed('app', earlier)
    const j = job(img, [['app', '1']])
    j.known.set(img.diffIds[0], {
      blob: {mediaType: MEDIA.layerGzip, digest: gz, size: earlier.length},
      repository: 'app'
    })
    const runner = runnerFor([img, dockerSave(img, 'oci')])
    await uploadImage(new RegistryMemory(client), j, cliExporter(runner), counts())
    expect(held('app', '1').m.layers[0].digest).toBe(gz)
    expect(layerUploads()).toBe(1)
  })

  it('links no blob a config the tag held merely claims for a layer: it checks the blob first', async () => {
    const img = image([base, big])
    // Whoever pushed app:1 before named a blob of other bytes as the base layer's diff_id.
    const planted = gzipSync(other)
    const pd = reg.seed('app', planted)
    const genuine = gzipSync(base, {level: 9})
    const gd = reg.seed('app', genuine)
    const j = job(img, [['app', '2']])
    j.known.set(img.diffIds[0], {
      blob: {mediaType: MEDIA.layerGzip, digest: pd, size: planted.length},
      repository: 'app'
    })
    j.known.set(img.diffIds[1], {
      blob: {mediaType: MEDIA.layerGzip, digest: gd, size: genuine.length},
      repository: 'app'
    })
    const runner = runnerFor([img, dockerSave(img, 'oci')])
    await uploadImage(new RegistryMemory(client), j, cliExporter(runner), counts())
    const {m, layers} = held('app', '2')
    expect(m.layers.map(l => l.digest)).not.toContain(pd)
    expect(m.layers.map(l => l.digest)).not.toContain(gd)
    expect(layers[0].equals(base)).toBe(true)
    expect(layers[1].equals(big)).toBe(true)
  })

  it('links no blob whose size the claiming manifest misstates: the pushed image would not pull', async () => {
    const img = image([base, big])
    const earlier = gzipSync(base, {level: 9})
    const gz = reg.seed('app', earlier)
    const j = job(img, [['app', '3']])
    // The right bytes under a size of someone else's choosing.
    j.known.set(img.diffIds[0], {
      blob: {mediaType: MEDIA.layerGzip, digest: gz, size: 7},
      repository: 'app'
    })
    const runner = runnerFor([img, dockerSave(img, 'oci')])
    await uploadImage(new RegistryMemory(client), j, cliExporter(runner), counts())
    const {m, layers} = held('app', '3')
    expect(m.layers.map(l => l.size)).not.toContain(7)
    expect(layers[0].equals(base)).toBe(true)
  })

  it('reuses layers a registry redirects to storage, reading them there without credentials', async () => {
    const storage = await new FakeStorage().start()
    const behind = await new FakeRegistry({
      auth: 'basic',
      user: 'ci',
      password: 's3cret',
      blobsAt: storage.origin
    }).start()
    storage.blobs = behind.blobs
    const c = new RegistryClient({
      host: behind.host,
      schemes: [{scheme: 'http', verify: false}],
      cas: [],
      username: 'ci',
      password: 's3cret'
    })
    try {
      const img = image([base, big])
      const runner = runnerFor([img, dockerSave(img, 'oci')])
      const first = await uploadImage(
        new RegistryMemory(c),
        job(img, [['app', '1']]),
        cliExporter(runner),
        counts()
      )
      const j = job(img, [['app', '2']])
      const m = JSON.parse(behind.manifests.get('app:1')?.body.toString() ?? '{}') as {
        layers: {mediaType: string; digest: string; size: number}[]
      }
      m.layers.forEach((l, i) => j.known.set(img.diffIds[i], {blob: l, repository: 'app'}))
      const sent = counts()
      const again = await uploadImage(new RegistryMemory(c), j, cliExporter(runner), sent)
      expect(again.digest).toBe(first.digest)
      expect(sent.layers).toBe(0)
      expect(saves(runner)).toBe(1)
      expect(storage.seen.length).toBeGreaterThan(0)
      expect(storage.seen.filter(x => x.authorization !== undefined)).toEqual([])
    } finally {
      c.close()
      await behind.stop()
      await storage.stop()
    }
  })

  it('sends again into a repository when the registry will not link blobs across repositories', async () => {
    const img = image([base, big])
    reg.refuseMounts = true
    const runner = runnerFor([img, dockerSave(img, 'v1')])
    await uploadImage(
      new RegistryMemory(client),
      job(img, [
        ['one', '1'],
        ['two', '1']
      ]),
      cliExporter(runner),
      counts()
    )
    expect(reg.manifests.get('two:1')?.body.toString()).toBe(
      reg.manifests.get('one:1')?.body.toString()
    )
    expect(saves(runner)).toBe(2)
  })

  it('fails with the daemon’s words when docker save fails', async () => {
    const img = image([base])
    const runner = new FakeRunner()
    runner.streams.push([
      ['docker', 'save'],
      Buffer.alloc(0),
      {exitCode: 1, stderr: 'Error response from daemon: no space left on device'}
    ])
    await expect(uploadApp(runner, img)).rejects.toThrow(
      `the export of ${img.id} from Docker failed (exit code 1): Error response from daemon: no space left on device`
    )
  })

  it('refuses an export whose config is not the image inspected', async () => {
    const img = image([base])
    const impostor = image([base], 'other')
    const archive = dockerSave({...impostor, id: img.id}, 'oci')
    const runner = runnerFor([img, archive])
    await expect(uploadApp(runner, img)).rejects.toThrow('holds a config of another digest')
  })
})
