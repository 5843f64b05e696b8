/**
 * One registry's HTTP API (the distribution spec), as far as a push needs it: reached as the daemon
 * would, authenticated, manifests, blob checks and reads, cross-repository mounts and uploads.
 */
import {createHash, getHashes} from 'node:crypto'
import * as http from 'node:http'
import {Transform} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {createGunzip} from 'node:zlib'
import * as https from 'node:https'
import * as core from '@actions/core'
import type {Proxies} from '../docker/proxy.js'
import {RegistryAuth} from './auth.js'
import {BlobUpload} from './blob-upload.js'
import {
  COMMIT_TIMEOUT_MS,
  header,
  networkError,
  readReply,
  RegistryError,
  registrySays,
  TIMEOUT_MS,
  type Reply
} from './http.js'
import {
  MANIFEST_ACCEPT,
  MEDIA,
  parseManifest,
  sha256Digest,
  imageBytes,
  isIndex,
  type Descriptor,
  type RemoteImage,
  type RemoteManifest
} from './manifest.js'
import {isTransientHttp} from './retry.js'
import {connectionPool, registryEndpoint, type Scheme} from './transport.js'

/** How to reach one registry: schemes in order, extra CAs and client certificate, credentials. */
export interface RegistryAccess {
  /** `host[:port]` as in image references. */
  host: string
  /** Where its API answers, when not at `host` (see registryEndpoint: docker.io's). */
  endpoint?: string
  schemes: Scheme[]
  /** PEM CAs trusted beside the system's (certs.d, the local registry's certificate). */
  cas: string[]
  client?: {cert: string; key: string}
  username?: string
  password?: string
  /** The proxies the daemon's pushes go through (see requestProxies); none: direct. */
  proxies?: Proxies
}

interface RequestOptions {
  /** Token scopes the request needs (bearer auth). */
  scopes: string[]
  headers?: Record<string, string>
  body?: Buffer | string
  /** How long the registry may stay silent (default one minute). */
  timeoutMs?: number
  /** Follows redirects (blob reads: registries on S3, GCS or Azure send them to storage). */
  follow?: boolean
}

/** The redirects a read follows, and how many in a row. */
const REDIRECTS = new Set([301, 302, 303, 307, 308])
const MAX_REDIRECTS = 5

/**
 * The digest a manifest was served as: its body's. A Docker-Content-Digest, or the digest it was
 * asked for by, that names another is refused: a registry that says one digest and serves other
 * bytes is broken or hostile, and a digest reported from its word alone would be pinned by people.
 */
function servedDigest(body: Buffer, claims: (string | undefined)[], what: string): string {
  let digest = sha256Digest(body)
  for (const claim of claims) {
    const [algorithm, hex] = (claim ?? '').split(':')
    // A claim of an algorithm this process cannot hash says nothing either way.
    if (hex === undefined || !getHashes().includes(algorithm)) continue
    const own = `${algorithm}:${createHash(algorithm).update(body).digest('hex')}`
    if (own !== claim) {
      throw new RegistryError(`${what} served a manifest of digest ${own} as ${claim}`, false)
    }
    digest = claim
  }
  return digest
}

/** One registry, reached the way the daemon would reach it; one keep-alive connection pool. */
export class RegistryClient {
  private origin?: string
  private pinging?: Promise<string>
  private agent?: http.Agent
  private readonly auth: RegistryAuth
  /** Pools to hosts other than the registry's (token services, upload storage), by origin. */
  private readonly otherAgents = new Map<string, http.Agent>()

  /** `host[:port]` where the registry's API answers. */
  readonly endpoint: string

  constructor(private readonly access: RegistryAccess) {
    this.endpoint = access.endpoint ?? registryEndpoint(access.host)
    const {username, password} = access
    this.auth = new RegistryAuth(access.host, {username, password}, (url, headers) =>
      this.send(url.toString(), 'GET', headers, undefined, this.reach(url.toString()).agent)
    )
  }

  /**
   * A pool to another host (a token service, storage an upload was sent to), checked against the
   * trusted CAs, through the proxy the daemon would use for that host.
   */
  private otherAgent(url: URL): http.Agent {
    let agent = this.otherAgents.get(url.origin)
    if (!agent) {
      const scheme = url.protocol === 'http:' ? 'http' : 'https'
      const {cas, proxies} = this.access
      agent = connectionPool({scheme, verify: true}, url.host, {cas, proxies})
      this.otherAgents.set(url.origin, agent)
    }
    return agent
  }

  /**
   * How to send to `url`: the registry's own pool and credentials on its origin; elsewhere (a
   * Location on another host) another pool and no credentials, as Docker sends them only where
   * they were asked for.
   */
  private reach(url: string): {own: boolean; agent: http.Agent | undefined} {
    const target = new URL(url)
    return target.origin === this.origin
      ? {own: true, agent: this.agent}
      : {own: false, agent: this.otherAgent(target)}
  }

  /** Sends one request and reads the whole answer (bodies here are small: JSON, manifests). */
  private async send(
    url: string,
    method: string,
    headers: Record<string, string>,
    body?: Buffer | string,
    agent = this.agent
  ): Promise<Reply> {
    return readReply(await this.open(url, method, headers, body, agent))
  }

  /** GET /v2/ once per run (callers at the same time share it). */
  private ping(): Promise<string> {
    this.pinging ??= this.probe()
    this.pinging.catch(() => (this.pinging = undefined))
    return this.pinging
  }

  /** GET /v2/ over each scheme in turn until one answers; reads how the registry wants auth. */
  private async probe(): Promise<string> {
    let last: unknown
    for (const s of this.access.schemes) {
      const origin = `${s.scheme}://${this.endpoint}`
      const {cas, client, proxies} = this.access
      const agent = connectionPool(s, this.endpoint, {cas, client, proxies})
      try {
        const r = await this.send(`${origin}/v2/`, 'GET', {}, undefined, agent)
        if (r.status !== 200 && r.status !== 401) {
          throw new RegistryError(
            `GET /v2/ on ${this.access.host} answered ${r.status}`,
            isTransientHttp(r.status),
            r.status
          )
        }
        const challenge = r.status === 401 ? header(r.headers, 'www-authenticate') : undefined
        this.auth.start(challenge, s.scheme === 'https')
        this.origin = origin
        this.agent = agent
        return origin
      } catch (e) {
        agent.destroy()
        last = e
        // A registry that answered over this scheme is not retried over another.
        if (e instanceof RegistryError) throw e
      }
    }
    throw networkError(last, `cannot reach ${this.access.host}`)
  }

  /** Sends one request and answers with the response unread (its body streams). */
  private open(
    url: string,
    method: string,
    headers: Record<string, string>,
    body?: Buffer | string,
    agent = this.agent,
    timeoutMs = TIMEOUT_MS
  ): Promise<http.IncomingMessage> {
    core.debug(`http: ${method} ${url.replace(/\?.*$/, '')}`)
    return new Promise((resolve, reject) => {
      const mod = url.startsWith('https:') ? https : http
      const req = mod.request(url, {method, headers, agent, timeout: timeoutMs}, resolve)
      req.on('timeout', () =>
        req.destroy(new Error(`timed out: no answer within ${timeoutMs / 1000} s`))
      )
      req.on('error', reject)
      req.end(body)
    })
  }

  /**
   * One request with auth, on the registry's origin or another (a Location it handed out): only
   * the registry's own origin gets its credentials, and only its 401 is a new challenge (one new
   * token, one more try). A 401 from elsewhere (upload storage) fails that request alone.
   */
  private async once(
    url: string,
    method: string,
    o: RequestOptions
  ): Promise<http.IncomingMessage> {
    const {own, agent} = this.reach(url)
    const go = async (): Promise<http.IncomingMessage> => {
      const auth = own ? await this.auth.authorization(o.scopes) : undefined
      const headers = {...o.headers, ...(auth ? {Authorization: auth} : {})}
      return this.open(url, method, headers, o.body, agent, o.timeoutMs)
    }
    const res = await go()
    const challenge = header(res.headers, 'www-authenticate')
    if (!own || res.statusCode !== 401 || !this.auth.renew(challenge)) return res
    res.resume()
    return go()
  }

  /**
   * A request with auth, its answer unread; a read that asks to follows redirects, sending the
   * registry's credentials to none but the registry's own origin.
   */
  private async exchange(
    method: string,
    path: string,
    o: RequestOptions
  ): Promise<http.IncomingMessage> {
    const origin = await this.ping()
    let url = path.startsWith('http') ? path : `${origin}${path}`
    const what = `${method} ${new URL(url).pathname} on ${this.access.host}`
    for (let hops = 0; ; hops++) {
      const res = await this.once(url, method, o).catch((e: unknown) => {
        throw networkError(e, what)
      })
      const location = header(res.headers, 'location')
      if (!o.follow || !REDIRECTS.has(res.statusCode ?? 0) || location === undefined) return res
      res.resume()
      if (hops === MAX_REDIRECTS) {
        throw new RegistryError(`${what} was redirected more than ${MAX_REDIRECTS} times`, false)
      }
      url = new URL(location, url).toString()
    }
  }

  /** A request with auth, its answer read whole. */
  private async request(method: string, path: string, o: RequestOptions): Promise<Reply> {
    const res = await this.exchange(method, path, o)
    return readReply(res).catch((e: unknown) => {
      throw networkError(e, `${method} ${path.replace(/\?.*$/, '')} on ${this.access.host}`)
    })
  }

  private fail(method: string, path: string, r: Reply): RegistryError {
    const what = `${method} ${path.replace(/\?.*$/, '')} on ${this.access.host}`
    return new RegistryError(
      `${what} answered ${r.status} ${http.STATUS_CODES[r.status] ?? ''}`.trimEnd() +
        registrySays(r.body),
      isTransientHttp(r.status),
      r.status
    )
  }

  private static pull(repo: string): string {
    return `repository:${repo}:pull`
  }

  private static push(repo: string): string {
    return `repository:${repo}:pull,push`
  }

  /** The manifest the registry holds for `reference` (a tag or digest), or undefined when none. */
  async manifest(repo: string, reference: string): Promise<RemoteManifest | undefined> {
    const path = `/v2/${repo}/manifests/${encodeURIComponent(reference)}`
    const r = await this.request('GET', path, {
      scopes: [RegistryClient.pull(repo)],
      headers: {Accept: MANIFEST_ACCEPT}
    })
    if (r.status === 404) return undefined
    if (r.status !== 200) throw this.fail('GET', path, r)
    const claims = [header(r.headers, 'docker-content-digest'), reference]
    const digest = servedDigest(r.body, claims, `${this.access.host} (${repo}:${reference})`)
    return parseManifest(r.body.toString('utf8'), digest, header(r.headers, 'content-type'))
  }

  /** What the registry holds for a tag, with the size of every manifest an index lists. */
  async image(repo: string, tag: string): Promise<RemoteImage | undefined> {
    const m = await this.manifest(repo, tag)
    if (!m) return undefined
    const parts = isIndex(m)
      ? (await Promise.all(m.manifests.map(async d => this.manifest(repo, d.digest)))).filter(
          x => x !== undefined
        )
      : [m]
    return {digest: m.digest, config: m.config?.digest, layers: m.layers, bytes: imageBytes(parts)}
  }

  /** A blob's bytes (an image config). */
  async blob(repo: string, digest: string): Promise<Buffer> {
    const path = `/v2/${repo}/blobs/${digest}`
    const r = await this.request('GET', path, {scopes: [RegistryClient.pull(repo)], follow: true})
    if (r.status !== 200) throw this.fail('GET', path, r)
    return r.body
  }

  /** A blob's bytes as they stream (a layer), from wherever the registry redirects the read. */
  async blobStream(repo: string, digest: string): Promise<http.IncomingMessage> {
    const path = `/v2/${repo}/blobs/${digest}`
    const res = await this.exchange('GET', path, {
      scopes: [RegistryClient.pull(repo)],
      follow: true
    })
    if (res.statusCode === 200) return res
    throw this.fail('GET', path, await readReply(res))
  }

  /**
   * A layer blob as the registry serves it: the diff_id of its bytes (ungzipped if need be) and how
   * many bytes it has; throws when they are not the bytes its digest names.
   */
  async servedLayer(repo: string, blob: Descriptor): Promise<{diffId: string; size: number}> {
    const body = await this.blobStream(repo, blob.digest)
    const compressed = createHash('sha256')
    const uncompressed = createHash('sha256')
    let size = 0
    const read = new Transform({
      transform(d: Buffer, _encoding, done) {
        compressed.update(d)
        size += d.length
        done(null, d)
      }
    })
    const sink = async (bytes: AsyncIterable<Buffer>): Promise<void> => {
      for await (const d of bytes) uncompressed.update(d)
    }
    if (blob.mediaType === MEDIA.layerGzip) await pipeline(body, read, createGunzip(), sink)
    else await pipeline(body, read, sink)
    if (`sha256:${compressed.digest('hex')}` !== blob.digest) {
      throw new RegistryError(`${this.access.host} served ${blob.digest} with other bytes`, false)
    }
    return {diffId: `sha256:${uncompressed.digest('hex')}`, size}
  }

  /** The size of a blob the repository holds (HEAD), or undefined when it holds none. */
  async blobSize(repo: string, digest: string): Promise<number | undefined> {
    const path = `/v2/${repo}/blobs/${digest}`
    const r = await this.request('HEAD', path, {scopes: [RegistryClient.push(repo)], follow: true})
    if (r.status === 404) return undefined
    if (r.status !== 200) throw this.fail('HEAD', path, r)
    return Number(header(r.headers, 'content-length') ?? -1)
  }

  /** Links a blob another repository of this registry holds into `repo`; false when refused. */
  async mount(repo: string, digest: string, from: string): Promise<boolean> {
    const path = `/v2/${repo}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`
    const r = await this.request('POST', path, {
      scopes: [RegistryClient.push(repo), RegistryClient.pull(from)],
      headers: {'Content-Length': '0'}
    })
    if (r.status === 201) return true
    // 202: the registry started an upload instead; it expires unused.
    if (r.status === 202) return false
    throw this.fail('POST', path, r)
  }

  private async startUpload(repo: string): Promise<string> {
    const path = `/v2/${repo}/blobs/uploads/`
    const r = await this.request('POST', path, {
      scopes: [RegistryClient.push(repo)],
      headers: {'Content-Length': '0'}
    })
    const location = header(r.headers, 'location')
    if (r.status !== 202 || location === undefined) throw this.fail('POST', path, r)
    return new URL(location, this.origin).toString()
  }

  private async commit(
    repo: string,
    location: string,
    digest: string,
    body?: Buffer
  ): Promise<void> {
    const url = new URL(location)
    url.searchParams.set('digest', digest)
    const r = await this.request('PUT', url.toString(), {
      scopes: [RegistryClient.push(repo)],
      headers: {
        'Content-Type': 'application/octet-stream',
        'Content-Length': String(body?.length ?? 0)
      },
      body,
      timeoutMs: COMMIT_TIMEOUT_MS
    })
    if (r.status !== 201) throw this.fail('PUT', `/v2/${repo}/blobs/uploads/`, r)
  }

  /** Uploads a small blob (a config) in one request. */
  async putBlob(repo: string, digest: string, data: Buffer): Promise<void> {
    await this.commit(repo, await this.startUpload(repo), digest, data)
  }

  /**
   * Starts a streamed upload: write the bytes, then finish to commit them under their digest,
   * hashed on the way unless `digest` is known (the registry checks it either way). With `size`
   * known too, the bytes go in the one request that commits them.
   */
  async openUpload(repo: string, digest?: string, size?: number): Promise<BlobUpload> {
    const location = await this.startUpload(repo)
    const {own, agent} = this.reach(location)
    const auth = own ? await this.auth.authorization([RegistryClient.push(repo)]) : undefined
    return new BlobUpload({
      location,
      auth,
      agent,
      host: this.access.host,
      digest,
      size,
      commit: (loc, d) => this.commit(repo, loc, d)
    })
  }

  /** Puts a manifest under a tag; returns the digest the registry answered with. */
  async putManifest(repo: string, tag: string, body: string, mediaType: string): Promise<string> {
    const path = `/v2/${repo}/manifests/${encodeURIComponent(tag)}`
    const r = await this.request('PUT', path, {
      scopes: [RegistryClient.push(repo)],
      headers: {'Content-Type': mediaType},
      body
    })
    if (r.status !== 201) throw this.fail('PUT', path, r)
    return header(r.headers, 'docker-content-digest') ?? sha256Digest(body)
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.agent?.destroy()
    for (const a of this.otherAgents.values()) a.destroy()
  }
}
