/**
 * One streamed blob upload, its body written as the layer is read, in large pieces from two reused
 * buffers, stopped as soon as the registry refuses it: a chunked PATCH then a commit under the
 * digest hashed on the way; or, when digest and size are known before the first byte, one PUT that
 * carries the body and commits it (the registry then writes and hashes the blob in one request,
 * and keeps no resumable state between two).
 */
import {createHash, type Hash} from 'node:crypto'
import * as http from 'node:http'
import * as https from 'node:https'
import * as core from '@actions/core'
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
import {isTransientHttp} from './retry.js'

/**
 * Bytes gathered per write of an upload: the export arrives in 64 KiB pieces, and fewer, larger
 * writes cost this process and the registry far fewer system calls.
 */
const WRITE_BYTES = 1 << 20

/** What a streamed upload needs: where, how to authenticate, and how to commit. */
export interface UploadTarget {
  location: string
  auth?: string
  agent?: http.Agent
  host: string
  /** The digest when known before the bytes are read (then they are not hashed here). */
  digest?: string
  /** The size in bytes, when known with the digest: the upload is then one PUT. */
  size?: number
  commit(location: string, digest: string): Promise<void>
}

/** One blob upload in progress: a PATCH (or a committing PUT) whose body is written as read. */
export class BlobUpload {
  private readonly hash?: Hash
  /** The size the whole-blob PUT announced; undefined for a chunked PATCH. */
  private readonly whole?: number
  private readonly req: http.ClientRequest
  private readonly answered: Promise<Reply>
  /** Set once the registry has answered: while the body is still written, that is a refusal. */
  private refusal?: RegistryError
  /** Fails the write being waited for, when the registry refuses the upload meanwhile. */
  private wake?: (e: Error) => void
  private readonly location: string
  private readonly host: string
  private failed?: Error
  private readonly buffers = [Buffer.allocUnsafe(WRITE_BYTES), Buffer.allocUnsafe(WRITE_BYTES)]
  private readonly writing: (Promise<void> | undefined)[] = [undefined, undefined]
  private current = 0
  private filled = 0
  size = 0

  constructor(private readonly target: UploadTarget) {
    const {location, auth, agent} = target
    this.location = location
    this.host = target.host
    if (target.digest === undefined) this.hash = createHash('sha256')
    const url = new URL(location)
    if (target.digest !== undefined && target.size !== undefined) {
      this.whole = target.size
      url.searchParams.set('digest', target.digest)
    }
    const method = this.whole === undefined ? 'PATCH' : 'PUT'
    core.debug(`http: ${method} ${location.replace(/\?.*$/, '')}`)
    const mod = location.startsWith('https:') ? https : http
    this.req = mod.request(url, {
      method,
      agent,
      timeout: TIMEOUT_MS,
      headers: {
        'Content-Type': 'application/octet-stream',
        ...(this.whole === undefined ? {} : {'Content-Length': String(this.whole)}),
        ...(auth ? {Authorization: auth} : {})
      }
    })
    this.answered = new Promise<Reply>((resolve, reject) => {
      this.req.on('response', res => resolve(readReply(res)))
      this.req.on('timeout', () =>
        this.req.destroy(new Error(`timed out: no progress within ${TIMEOUT_MS / 1000} s`))
      )
      this.req.on('error', e => {
        this.failed = e
        reject(e)
      })
    })
    // The registry answering before the body ends means it refused the upload: the wait for a
    // write stops at once (after finish has ended the body, nothing waits any more).
    this.answered.then(
      r => {
        this.refusal = new RegistryError(
          `a blob upload on ${this.host} was answered ${r.status} before it ended${registrySays(r.body)}`,
          isTransientHttp(r.status),
          r.status
        )
        this.wake?.(this.refusal)
      },
      // Seen through failed and finish; an unhandled rejection here would end the process.
      () => undefined
    )
  }

  /**
   * Waits until the socket has taken a write; fails as soon as the registry refuses the upload.
   * One waiter at a time, so nothing piles up on the registry's answer while the body is sent.
   */
  private async written(write: Promise<void> | undefined): Promise<void> {
    try {
      await new Promise<void>((resolve, reject) => {
        if (this.refusal) {
          reject(this.refusal)
          return
        }
        this.wake = reject
        ;(write ?? Promise.resolve()).then(resolve, reject)
      })
    } catch (e) {
      throw networkError(e, `uploading to ${this.host}`)
    } finally {
      this.wake = undefined
    }
  }

  /** Sends bytes, waiting while the connection is full; throws once the upload has failed. */
  async write(chunk: Buffer): Promise<void> {
    if (this.failed) throw networkError(this.failed, `uploading to ${this.host}`)
    if (this.whole !== undefined && this.size + chunk.length > this.whole) {
      throw new RegistryError(
        `a blob for ${this.host} is longer than its ${this.whole} bytes`,
        false
      )
    }
    this.hash?.update(chunk)
    this.size += chunk.length
    for (let at = 0; at < chunk.length;) {
      const copied = chunk.copy(this.buffers[this.current], this.filled, at)
      this.filled += copied
      at += copied
      if (this.filled === WRITE_BYTES) await this.flush()
    }
  }

  /**
   * Sends the filled buffer as one piece of the body and switches to the other, once the socket
   * has taken what was written from it (two buffers reused: no allocation per piece).
   */
  private async flush(): Promise<void> {
    if (this.filled === 0) return
    const piece = this.buffers[this.current].subarray(0, this.filled)
    this.writing[this.current] = new Promise<void>((resolve, reject) =>
      this.req.write(piece, e => (e ? reject(e) : resolve()))
    )
    this.writing[this.current]?.catch(() => undefined)
    this.current = this.current === 0 ? 1 : 0
    this.filled = 0
    await this.written(this.writing[this.current])
  }

  /** Ends the body and commits the blob; returns its digest and size. */
  async finish(): Promise<{digest: string; size: number}> {
    if (this.whole !== undefined && this.size !== this.whole) {
      throw new RegistryError(
        `a blob for ${this.host} ended at ${this.size} of its ${this.whole} bytes`,
        false
      )
    }
    await this.flush()
    for (const w of this.writing) await this.written(w)
    // A PUT's answer waits for the registry to commit the blob, as a commit's does.
    if (this.whole !== undefined) this.req.setTimeout(COMMIT_TIMEOUT_MS)
    this.req.end()
    const r = await this.answered.catch((e: unknown) => {
      throw networkError(e, `uploading to ${this.host}`)
    })
    if (this.whole !== undefined) {
      if (r.status !== 201) {
        throw new RegistryError(
          `PUT of a blob on ${this.host} answered ${r.status}${registrySays(r.body)}`,
          isTransientHttp(r.status),
          r.status
        )
      }
      return {digest: this.target.digest ?? '', size: this.size}
    }
    const location = header(r.headers, 'location')
    if (r.status !== 202 || location === undefined) {
      throw new RegistryError(
        `PATCH of a blob upload on ${this.host} answered ${r.status}${registrySays(r.body)}`,
        isTransientHttp(r.status),
        r.status
      )
    }
    const digest = this.target.digest ?? `sha256:${this.hash?.digest('hex') ?? ''}`
    await this.target.commit(new URL(location, this.location).toString(), digest)
    return {digest, size: this.size}
  }

  /** Gives up: the registry drops the unfinished upload. */
  abort(): void {
    this.req.destroy()
  }
}
