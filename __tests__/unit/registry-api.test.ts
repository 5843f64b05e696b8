import {createHash} from 'node:crypto'
import {afterEach, describe, expect, it} from '@jest/globals'
import {RegistryClient} from '../../src/registry-client/client.js'
import {RegistryError} from '../../src/registry-client/http.js'
import {registryEndpoint, type Scheme} from '../../src/registry-client/transport.js'
import {FakeRegistry, FakeStorage} from './fake-registry.js'

const HTTP: Scheme[] = [{scheme: 'http', verify: false}]
let reg: FakeRegistry
let storage: FakeStorage | undefined
afterEach(async () => {
  await reg?.stop()
  await storage?.stop()
  storage = undefined
})
const BASIC = `Basic ${Buffer.from('ci:s3cret').toString('base64')}`

function client(o: {user?: string; password?: string; schemes?: typeof HTTP; host?: string} = {}) {
  return new RegistryClient({
    host: o.host ?? reg.host,
    endpoint: reg.host,
    schemes: o.schemes ?? HTTP,
    cas: [],
    username: o.user,
    password: o.password
  })
}

async function upload(c: RegistryClient, repo: string, data: Buffer) {
  const u = await c.openUpload(repo)
  await u.write(data.subarray(0, 10))
  await u.write(data.subarray(10))
  return u.finish()
}

describe('the registry client', () => {
  it('streams a blob, puts a manifest and reads it back with its digest', async () => {
    reg = await new FakeRegistry().start()
    const c = client()
    const blob = await upload(c, 'team/app', Buffer.from('layer bytes, sent in two writes'))
    expect(reg.blobs.get(blob.digest)?.toString()).toBe('layer bytes, sent in two writes')
    expect(await c.blobSize('team/app', blob.digest)).toBe(31)
    expect(await c.blobSize('other', blob.digest)).toBeUndefined()
    const manifest = JSON.stringify({schemaVersion: 2, layers: [{...blob, mediaType: 'x'}]})
    const digest = await c.putManifest(
      'team/app',
      'v1',
      manifest,
      'application/vnd.oci.image.manifest.v1+json'
    )
    const read = await c.manifest('team/app', 'v1')
    expect(read?.digest).toBe(digest)
    expect(read?.layers.map(l => l.digest)).toEqual([blob.digest])
    expect(await c.manifest('team/app', 'v2')).toBeUndefined()
    c.close()
  })

  it('sends a blob of known digest and size in one PUT, and refuses a body longer or shorter than that size', async () => {
    reg = await new FakeRegistry().start()
    const c = client()
    const data = Buffer.from('a layer whose digest and size are known before its first byte')
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`
    const u = await c.openUpload('team/app', digest, data.length)
    await u.write(data)
    expect(await u.finish()).toEqual({digest, size: data.length})
    expect(reg.blobs.get(digest)?.equals(data)).toBe(true)
    expect(reg.lines().filter(l => l.startsWith('PATCH'))).toEqual([])

    const longer = await c.openUpload('team/app', digest, data.length - 1)
    const e1 = await longer.write(data).catch((x: unknown) => x)
    longer.abort()
    expect(e1).toEqual(
      new RegistryError(`a blob for ${reg.host} is longer than its ${data.length - 1} bytes`, false)
    )
    const shorter = await c.openUpload('team/app', digest, data.length + 1)
    await shorter.write(data)
    const e2 = await shorter.finish().catch((x: unknown) => x)
    shorter.abort()
    expect(e2).toEqual(
      new RegistryError(
        `a blob for ${reg.host} ended at ${data.length} of its ${data.length + 1} bytes`,
        false
      )
    )
    c.close()
  })

  it("stops an upload the registry refuses while it is sent, in the registry's words", async () => {
    reg = await new FakeRegistry({refuseUploads: true}).start()
    const c = client()
    const u = await c.openUpload('team/app')
    // The registry answers at the first bytes: the upload fails with that answer, before the body
    // ends and before any commit.
    const sent = (async () => {
      for (let i = 0; i < 8; i++) await u.write(Buffer.alloc(1 << 20))
      return u.finish()
    })()
    const error = await sent.catch((e: unknown) => e)
    expect(error).toBeInstanceOf(RegistryError)
    expect((error as RegistryError).message).toBe(
      `a blob upload on ${reg.host} was answered 413 before it ended: SIZE_INVALID: no room`
    )
    expect((error as RegistryError).transient).toBe(false)
    expect(reg.lines().filter(l => l.startsWith('PUT'))).toEqual([])
    u.abort()
    c.close()
  })

  it('links a blob from another repository instead of sending it', async () => {
    reg = await new FakeRegistry().start()
    const d = reg.seed('base', Buffer.from('shared'))
    const c = client()
    expect(await c.mount('app', d, 'base')).toBe(true)
    expect(reg.links.get('app')?.has(d)).toBe(true)
    reg.refuseMounts = true
    expect(await c.mount('app2', d, 'base')).toBe(false)
    c.close()
  })

  it('sends basic credentials when the registry asks for them', async () => {
    reg = await new FakeRegistry({auth: 'basic', user: 'ci', password: 's3cret'}).start()
    const c = client({user: 'ci', password: 's3cret'})
    await upload(c, 'private/app', Buffer.from('x'))
    expect(
      reg.seen.filter(s => s.path !== '/v2/').every(s => s.authorization?.startsWith('Basic '))
    ).toBe(true)
    c.close()
  })

  it('gets a bearer token from the realm once per set of scopes, with the credentials', async () => {
    reg = await new FakeRegistry({auth: 'bearer', user: 'ci', password: 's3cret'}).start()
    const c = client({user: 'ci', password: 's3cret'})
    await upload(c, 'private/app', Buffer.from('a'))
    await upload(c, 'private/app', Buffer.from('b'))
    expect(reg.lines().filter(l => l === 'GET /token')).toHaveLength(1)
    const api = reg.seen.filter(s => s.path.startsWith('/v2/private'))
    expect(api.every(s => s.authorization === 'Bearer good-token')).toBe(true)
    c.close()
  })

  it('refuses wrong credentials for good (no retry helps)', async () => {
    reg = await new FakeRegistry({auth: 'basic', user: 'ci', password: 's3cret'}).start()
    const c = client({user: 'ci', password: 'wrong'})
    const e = await c.openUpload('private/app').catch((x: unknown) => x)
    expect(e).toBeInstanceOf(RegistryError)
    expect((e as RegistryError).transient).toBe(false)
    expect((e as Error).message).toContain(
      '401 Unauthorized: UNAUTHORIZED: authentication required'
    )
    c.close()
  })

  it('calls a 503 transient, and a bad digest not', async () => {
    reg = await new FakeRegistry().start()
    reg.failures.push({match: /^PUT \/v2\/app\/manifests\//, left: 1})
    const c = client()
    const e = await c.putManifest('app', '1', '{}', 'x').catch((x: unknown) => x)
    expect((e as RegistryError).transient).toBe(true)
    expect((e as Error).message).toContain('answered 503')
    const bad = await c
      .putBlob('app', `sha256:${'0'.repeat(64)}`, Buffer.from('x'))
      .catch((x: unknown) => x)
    expect((bad as RegistryError).transient).toBe(false)
    expect((bad as Error).message).toContain('DIGEST_INVALID')
    c.close()
  })

  it('falls back from HTTPS to HTTP for an insecure registry, as the daemon does', async () => {
    reg = await new FakeRegistry().start()
    const c = client({
      schemes: [
        {scheme: 'https', verify: false},
        {scheme: 'http', verify: false}
      ]
    })
    expect(await c.manifest('app', '1')).toBeUndefined()
    c.close()
  })

  it('calls a registry nobody listens on transient', async () => {
    reg = await new FakeRegistry().start()
    await reg.stop()
    const c = client()
    const e = await c.manifest('app', '1').catch((x: unknown) => x)
    expect((e as RegistryError).transient).toBe(true)
    expect((e as Error).message).toMatch(/cannot reach 127\.0\.0\.1:\d+: .*ECONNREFUSED/)
  })

  it("keeps the registry's credentials from a challenge of its upload storage's", async () => {
    // The challenge's realm is the storage itself, to see whether credentials are sent there.
    storage = await new FakeStorage({challenge: true}).start()
    reg = await new FakeRegistry({
      auth: 'basic',
      user: 'ci',
      password: 's3cret',
      uploadsAt: storage.origin
    }).start()
    const c = client({user: 'ci', password: 's3cret'})
    // Storage that answers 401 fails the request it answered, in its words...
    const e = await c
      .putBlob('one', `sha256:${'1'.repeat(64)}`, Buffer.from('1'))
      .catch((x: unknown) => x)
    expect((e as Error).message).toContain('answered 401')
    // ...and is not the registry: the next repository is still the registry's to authorize.
    await c.putBlob('two', `sha256:${'2'.repeat(64)}`, Buffer.from('2')).catch(() => undefined)
    expect(storage.seen.length).toBeGreaterThanOrEqual(2)
    expect(storage.seen.filter(s => s.authorization !== undefined)).toEqual([])
    const posts = reg.seen.filter(s => s.method === 'POST')
    expect(posts.map(s => s.authorization)).toEqual([BASIC, BASIC])
    c.close()
  })

  it('follows blob redirects to storage for reads, without the credentials', async () => {
    storage = await new FakeStorage().start()
    reg = await new FakeRegistry({
      auth: 'basic',
      user: 'ci',
      password: 's3cret',
      blobsAt: storage.origin
    }).start()
    storage.blobs = reg.blobs
    const d = reg.seed('app', Buffer.from('config bytes'))
    const c = client({user: 'ci', password: 's3cret'})
    expect(await c.blobSize('app', d)).toBe(12)
    expect((await c.blob('app', d)).toString()).toBe('config bytes')
    expect(await c.blobSize('app', `sha256:${'0'.repeat(64)}`)).toBeUndefined()
    expect(storage.seen.map(s => `${s.method} ${s.path}`)).toEqual([
      `HEAD /blobs/${d}`,
      `GET /blobs/${d}`
    ])
    expect(storage.seen.filter(s => s.authorization !== undefined)).toEqual([])
    c.close()
  })

  it('refuses a manifest whose Docker-Content-Digest is not the digest of its body', async () => {
    reg = await new FakeRegistry({manifestDigest: `sha256:${'f'.repeat(64)}`}).start()
    const c = client()
    await c.putManifest(
      'app',
      '1',
      '{"schemaVersion":2}',
      'application/vnd.oci.image.manifest.v1+json'
    )
    const e = await c.manifest('app', '1').catch((x: unknown) => x)
    expect(e).toBeInstanceOf(RegistryError)
    expect((e as RegistryError).transient).toBe(false)
    expect((e as Error).message).toContain(`sha256:${'f'.repeat(64)}`)
    c.close()
  })

  it('reaches docker.io at registry-1.docker.io, authorized by the realm its challenge names', async () => {
    expect(registryEndpoint('docker.io')).toBe('registry-1.docker.io')
    expect(registryEndpoint('index.docker.io')).toBe('registry-1.docker.io')
    expect(registryEndpoint('ghcr.io')).toBe('ghcr.io')
    expect(registryEndpoint('localhost:5000')).toBe('localhost:5000')
    const hub = new RegistryClient({host: 'docker.io', schemes: HTTP, cas: []})
    expect(hub.endpoint).toBe('registry-1.docker.io')
    // Docker Hub's API and its token service (auth.docker.io) stand in on 127.0.0.1.
    storage = await new FakeStorage({tokenFor: BASIC}).start()
    reg = await new FakeRegistry({
      auth: 'bearer',
      user: 'ci',
      password: 's3cret',
      realm: `${storage.origin}/token`
    }).start()
    const c = client({host: 'docker.io', user: 'ci', password: 's3cret'})
    await upload(c, 'library/app', Buffer.from('a'))
    expect(storage.seen.map(s => [s.path, s.authorization])).toEqual([['/token', BASIC]])
    const api = reg.seen.filter(s => s.path.startsWith('/v2/library'))
    expect(api.every(s => s.authorization === 'Bearer good-token')).toBe(true)
    c.close()
  })
})
