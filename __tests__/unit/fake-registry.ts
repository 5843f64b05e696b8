/**
 * A registry in this process (the distribution API as far as pushing uses it) on 127.0.0.1: blob
 * uploads (chunked PATCH, monolithic PUT, cross-repository mounts), manifests by tag and digest,
 * basic or bearer auth, and failures on purpose. It checks what a real registry checks: digests
 * of uploads, and that a manifest's blobs are in its repository.
 */
import {createHash} from 'node:crypto'
import * as http from 'node:http'
import type {AddressInfo} from 'node:net'

export interface FakeRegistryOptions {
  auth?: 'basic' | 'bearer'
  user?: string
  password?: string
  /** Answers a blob upload's PATCH with 413 as soon as its body begins, as a full registry may. */
  refuseUploads?: boolean
  /** Hands out upload Locations on this origin (storage on another host). */
  uploadsAt?: string
  /** Answers blob GET and HEAD with 307 to this origin (storage on another host). */
  blobsAt?: string
  /** Says this Docker-Content-Digest for every manifest it serves, whatever the body's. */
  manifestDigest?: string
  /** The token realm its bearer challenge names (default: its own /token). */
  realm?: string
}

interface Stored {
  body: Buffer
  type: string
}

const digestOf = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`

/** One request as the registry saw it (method and path, no query). */
export interface Seen {
  method: string
  path: string
  authorization?: string
  /** The request's body carried a layer (a tar: not JSON, as configs and manifests are). */
  layer?: boolean
}

function isLayer(body: Buffer): boolean {
  if (body.length === 0) return false
  try {
    JSON.parse(body.toString('utf8'))
    return false
  } catch {
    return true
  }
}

/** An HTTP server on a free loopback port, for a fake to answer on; stop() closes it. */
class LoopbackServer {
  private server?: http.Server
  port = 0

  /** Starts answering with `handler` on 127.0.0.1, on a port the system picks. */
  protected async listen(handler: http.RequestListener): Promise<void> {
    const server = http.createServer(handler)
    this.server = server
    await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
    this.port = (server.address() as AddressInfo).port
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections()
    await new Promise(r => this.server?.close(r))
  }
}

export class FakeRegistry extends LoopbackServer {
  readonly blobs = new Map<string, Buffer>()
  /** repository → blob digests linked into it. */
  readonly links = new Map<string, Set<string>>()
  /** `repo@digest` and `repo:tag` → manifest. */
  readonly manifests = new Map<string, Stored>()
  readonly seen: Seen[] = []
  /** Answers 503 to the next n requests whose `METHOD path` matches. */
  readonly failures: {match: RegExp; left: number}[] = []
  /** Refuses cross-repository mounts (answers 202, as registries that do not mount). */
  refuseMounts = false
  private readonly uploads = new Map<string, Buffer[]>()
  private next = 0

  constructor(private readonly options: FakeRegistryOptions = {}) {
    super()
  }

  get host(): string {
    return `127.0.0.1:${this.port}`
  }

  async start(): Promise<this> {
    await this.listen((req, res) => {
      if (this.options.refuseUploads && req.method === 'PATCH') {
        req.once('data', () => {
          res.writeHead(413, {'Content-Type': 'application/json'})
          res.end(JSON.stringify({errors: [{code: 'SIZE_INVALID', message: 'no room'}]}))
        })
        return
      }
      const chunks: Buffer[] = []
      req.on('data', (d: Buffer) => chunks.push(d))
      req.on('end', () => this.handle(req, Buffer.concat(chunks), res))
    })
    return this
  }

  /** Blob uploads that carried a layer's bytes (a PATCH, or a PUT that commits them too). */
  layerUploads(): Seen[] {
    return this.seen.filter(s => s.layer && /\/blobs\/uploads\//.test(s.path))
  }

  /** Requests seen, as `METHOD path` lines. */
  lines(): string[] {
    return this.seen.map(s => `${s.method} ${s.path}`)
  }

  link(repo: string, digest: string): void {
    const set = this.links.get(repo) ?? new Set<string>()
    set.add(digest)
    this.links.set(repo, set)
  }

  /** Puts a blob straight into a repository (what an earlier push left). */
  seed(repo: string, data: Buffer): string {
    const d = digestOf(data)
    this.blobs.set(d, data)
    this.link(repo, d)
    return d
  }

  private authorized(req: http.IncomingMessage): boolean {
    const a = req.headers.authorization
    const {auth, user, password} = this.options
    if (auth === 'basic') {
      return a === `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`
    }
    if (auth === 'bearer') return a === 'Bearer good-token'
    return true
  }

  private challenge(res: http.ServerResponse): void {
    const value =
      this.options.auth === 'basic'
        ? 'Basic realm="fake"'
        : `Bearer realm="${this.options.realm ?? `http://${this.host}/token`}",service="fake"`
    res.writeHead(401, {'WWW-Authenticate': value, 'Content-Type': 'application/json'})
    res.end(JSON.stringify({errors: [{code: 'UNAUTHORIZED', message: 'authentication required'}]}))
  }

  private handle(req: http.IncomingMessage, body: Buffer, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', `http://${this.host}`)
    const method = req.method ?? 'GET'
    this.seen.push({
      method,
      path: url.pathname,
      authorization: req.headers.authorization,
      layer: isLayer(body)
    })
    const failure = this.failures.find(f => f.left > 0 && f.match.test(`${method} ${url.pathname}`))
    if (failure) {
      failure.left--
      res.writeHead(503).end('Service Unavailable')
      return
    }
    if (url.pathname === '/token') {
      const ok =
        req.headers.authorization ===
        `Basic ${Buffer.from(`${this.options.user}:${this.options.password}`).toString('base64')}`
      res.writeHead(ok ? 200 : 401, {'Content-Type': 'application/json'})
      res.end(ok ? JSON.stringify({token: 'good-token'}) : '{}')
      return
    }
    if (url.pathname === '/v2/') {
      if (this.options.auth && !this.authorized(req)) return this.challenge(res)
      res.writeHead(200).end('{}')
      return
    }
    if (!this.authorized(req)) return this.challenge(res)
    const m = /^\/v2\/(.+)\/(blobs\/uploads|blobs|manifests)\/?(.*)$/.exec(url.pathname)
    if (!m) {
      res.writeHead(404).end()
      return
    }
    const [, repo, kind, ref] = m
    if (kind === 'blobs/uploads') return this.upload(repo, ref, method, url, body, res)
    if (kind === 'blobs') return this.blob(repo, ref, method, res)
    return this.manifest(repo, decodeURIComponent(ref), method, req, body, res)
  }

  private upload(
    repo: string,
    id: string,
    method: string,
    url: URL,
    body: Buffer,
    res: http.ServerResponse
  ): void {
    if (method === 'POST' && id === '') {
      const mount = url.searchParams.get('mount')
      const from = url.searchParams.get('from')
      if (mount && from && !this.refuseMounts && this.links.get(from)?.has(mount)) {
        this.link(repo, mount)
        res.writeHead(201, {'Docker-Content-Digest': mount}).end()
        return
      }
      const uid = `u${++this.next}`
      this.uploads.set(uid, [])
      const at = this.options.uploadsAt ?? ''
      res.writeHead(202, {Location: `${at}/v2/${repo}/blobs/uploads/${uid}?_state=s`}).end()
      return
    }
    const parts = this.uploads.get(id)
    if (!parts) {
      res.writeHead(404).end()
      return
    }
    if (method === 'PATCH') {
      parts.push(body)
      res.writeHead(202, {Location: `/v2/${repo}/blobs/uploads/${id}?_state=t`}).end()
      return
    }
    if (method === 'PUT') {
      parts.push(body)
      const data = Buffer.concat(parts)
      const digest = url.searchParams.get('digest')
      if (digest !== digestOf(data)) {
        res.writeHead(400, {'Content-Type': 'application/json'})
        res.end(
          JSON.stringify({errors: [{code: 'DIGEST_INVALID', message: 'digest did not match'}]})
        )
        return
      }
      this.uploads.delete(id)
      this.blobs.set(digest, data)
      this.link(repo, digest)
      res.writeHead(201, {'Docker-Content-Digest': digest}).end()
      return
    }
    res.writeHead(405).end()
  }

  private blob(repo: string, digest: string, method: string, res: http.ServerResponse): void {
    const data = this.links.get(repo)?.has(digest) ? this.blobs.get(digest) : undefined
    if (!data) {
      res.writeHead(404).end()
      return
    }
    if (this.options.blobsAt !== undefined) {
      res.writeHead(307, {Location: `${this.options.blobsAt}/blobs/${digest}?signature=s`}).end()
      return
    }
    res.writeHead(200, {'Content-Length': String(data.length), 'Docker-Content-Digest': digest})
    res.end(method === 'HEAD' ? undefined : data)
  }

  private manifest(
    repo: string,
    ref: string,
    method: string,
    req: http.IncomingMessage,
    body: Buffer,
    res: http.ServerResponse
  ): void {
    const key = ref.startsWith('sha256:') ? `${repo}@${ref}` : `${repo}:${ref}`
    if (method === 'PUT') {
      const json = JSON.parse(body.toString()) as {
        config?: {digest: string}
        layers?: {digest: string}[]
      }
      const refs = [json.config, ...(json.layers ?? [])].filter(d => d !== undefined)
      const missing = refs.find(d => !this.links.get(repo)?.has(d.digest))
      if (missing) {
        res.writeHead(400, {'Content-Type': 'application/json'})
        res.end(
          JSON.stringify({errors: [{code: 'MANIFEST_BLOB_UNKNOWN', message: missing.digest}]})
        )
        return
      }
      const stored = {body, type: req.headers['content-type'] ?? ''}
      const digest = digestOf(body)
      this.manifests.set(key, stored)
      this.manifests.set(`${repo}@${digest}`, stored)
      res.writeHead(201, {'Docker-Content-Digest': digest}).end()
      return
    }
    const m = this.manifests.get(key)
    if (!m) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, {
      'Content-Type': m.type,
      'Content-Length': String(m.body.length),
      'Docker-Content-Digest': this.options.manifestDigest ?? digestOf(m.body)
    })
    res.end(method === 'HEAD' ? undefined : m.body)
  }
}

export interface FakeStorageOptions {
  /** Answers every request 401 with a bearer challenge naming a realm on itself. */
  challenge?: boolean
  /** Serves the token `good-token` at /token to this Authorization (a registry's token service). */
  tokenFor?: string
}

/**
 * Object storage on another origin of 127.0.0.1 (as S3, GCS or Azure stand behind a registry):
 * serves blobs, or answers 401 with a challenge of its own; records what it was sent.
 */
export class FakeStorage extends LoopbackServer {
  readonly seen: Seen[] = []
  /** The blobs it serves at /blobs/<digest> (a registry's, behind its redirects). */
  blobs = new Map<string, Buffer>()

  constructor(private readonly options: FakeStorageOptions = {}) {
    super()
  }

  get origin(): string {
    return `http://127.0.0.1:${this.port}`
  }

  async start(): Promise<this> {
    await this.listen((req, res) => {
      req.resume()
      req.on('end', () => {
        const url = new URL(req.url ?? '/', this.origin)
        const method = req.method ?? 'GET'
        this.seen.push({method, path: url.pathname, authorization: req.headers.authorization})
        if (url.pathname === '/token' && this.options.tokenFor !== undefined) {
          const ok = req.headers.authorization === this.options.tokenFor
          res.writeHead(ok ? 200 : 401, {'Content-Type': 'application/json'})
          res.end(ok ? JSON.stringify({token: 'good-token'}) : '{}')
          return
        }
        if (this.options.challenge === true) {
          const value = `Bearer realm="${this.origin}/token",service="storage"`
          res.writeHead(401, {'WWW-Authenticate': value}).end()
          return
        }
        const data = this.blobs.get(url.pathname.replace(/^\/blobs\//, ''))
        if (!data) {
          res.writeHead(404).end()
          return
        }
        res.writeHead(200, {'Content-Length': String(data.length)})
        res.end(method === 'HEAD' ? undefined : data)
      })
    })
    return this
  }
}
