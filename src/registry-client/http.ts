/**
 * The HTTP layer every request to a registry shares: the error a failed one becomes (transient or
 * not), the reply read whole, and the registry's own words about an error.
 */
import type * as http from 'node:http'
import {withoutCredentialsIn} from '../docker/proxy.js'
import {HostError} from '../errors.js'
import {isTransientNetwork, type Judged} from './retry.js'

/** A failed registry request: transient (network, 5xx, 429) or not (auth, names, bad manifests). */
export class RegistryError extends HostError implements Judged {
  constructor(
    message: string,
    readonly transient: boolean,
    readonly status?: number
  ) {
    super(message)
    this.name = 'RegistryError'
  }
}

/** A registry's answer, read whole (bodies here are small: JSON, manifests, errors). */
export interface Reply {
  status: number
  headers: http.IncomingHttpHeaders
  body: Buffer
}

/** How long a registry may stay silent before a request fails (a transient failure). */
export const TIMEOUT_MS = 60_000

/** Committing an upload can take a registry minutes (a large blob moved on slow storage). */
export const COMMIT_TIMEOUT_MS = 600_000

/** A header's value (the first, when repeated). */
export function header(h: http.IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name]
  return Array.isArray(v) ? v[0] : v
}

/**
 * The most of an answer read whole (manifests, configs, tokens, errors; layers are streamed): a
 * registry that sends more is refused instead of filling the runner's memory.
 */
export const MAX_REPLY_BYTES = 16 * 1024 * 1024

/** Reads an answer whole, up to MAX_REPLY_BYTES. */
export function readReply(res: http.IncomingMessage, max = MAX_REPLY_BYTES): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    res.on('data', (d: Buffer) => {
      size += d.length
      if (size > max) {
        res.destroy()
        reject(new RegistryError(`an answer of more than ${max} bytes (${res.statusCode})`, false))
        return
      }
      chunks.push(d)
    })
    res.on('end', () =>
      resolve({status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks)})
    )
    res.on('error', reject)
  })
}

/** The registry's own words about an error (`{"errors":[{"code","message"}]}`), if any. */
export function registrySays(body: Buffer): string {
  try {
    const json = JSON.parse(body.toString('utf8')) as {errors?: {code?: string; message?: string}[]}
    const e = json.errors?.[0]
    if (e) return `: ${[e.code, e.message].filter(Boolean).join(': ')}`
  } catch {
    // Not JSON: the status line says enough.
  }
  return ''
}

/**
 * A request that failed before an answer (refused, reset, timed out, a proxy's refused tunnel) as
 * a RegistryError. A proxy URL the message quotes loses its user and password: the message is
 * logged and annotated, and a proxy from the runner's environment is not masked.
 */
export function networkError(e: unknown, what: string): RegistryError {
  if (e instanceof RegistryError) return e
  const err = e as NodeJS.ErrnoException & {statusCode?: number}
  return new RegistryError(
    `${what}: ${withoutCredentialsIn(err.message)}`,
    isTransientNetwork(err.code, err.message, err.statusCode)
  )
}
