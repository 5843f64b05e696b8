/** Pushing as data (pure): failure classes, backoff, the push output's digest, registry digests. */
import type {ImageResult} from '../../outputs.js'
import type {PushTarget} from './image-list.js'

/** One target's result: a row of the `images` output, and how many attempts it took. */
export interface PushResult extends ImageResult {
  attempts?: number
}

const PERMANENT = [
  /unauthorized/i,
  /authentication required/i,
  /denied/i,
  /no basic auth credentials/i,
  /invalid reference format/i,
  /name unknown/i,
  /manifest invalid/i,
  /repository name must/i,
  /An image does not exist locally/i,
  /no such image/i
]
const TRANSIENT = [
  /connection refused/i,
  /connection reset/i,
  /broken pipe/i,
  /\bEOF\b/,
  /timeout/i,
  /timed out/i,
  /i\/o timeout/i,
  /\b5\d\d\b/,
  /Service Unavailable/i,
  /Bad Gateway/i,
  /Internal Server Error/i,
  /TLS handshake/i,
  /no such host/i,
  /temporary failure/i
]

/** Is a failed push worth another try? Auth and name errors are not; network and 5xx are. */
export function isTransient(output: string): boolean {
  if (PERMANENT.some(re => re.test(output))) return false
  return TRANSIENT.some(re => re.test(output))
}

/** Is a registry's HTTP status worth another try? Timeouts, rate limits and server errors are. */
export function isTransientHttp(status: number): boolean {
  return status === 408 || status === 429 || status >= 500
}

const NETWORK_TRANSIENT = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND'
])

/**
 * Is a network failure worth another try? Node's error code says; a failure without one (a
 * timeout of ours) by its message. A proxy that refused the tunnel (`ERR_PROXY_TUNNEL`) is worth
 * one when it went away or answered like a busy server (502, 503), not when it asked for
 * credentials (407) or forbade the host (403): its status, else the one its message quotes.
 */
export function isTransientNetwork(
  code: string | undefined,
  message: string,
  status?: number
): boolean {
  if (code === 'ERR_PROXY_TUNNEL') {
    const quoted = /HTTP\/[\d.]+ (\d{3})/.exec(message)?.[1]
    const answered = status ?? (quoted === undefined ? undefined : Number(quoted))
    return answered === undefined ? true : isTransientHttp(answered)
  }
  return code !== undefined ? NETWORK_TRANSIENT.has(code) : isTransient(message)
}

/** Seconds to wait before retry `n` (1-based): 1, 2, 4, 8, capped at 15. */
export function backoffSeconds(n: number): number {
  return Math.min(15, 2 ** (n - 1))
}

/** The digest and size `docker push` prints last: `TAG: digest: sha256:… size: N`. */
export function parsePushOutput(text: string): {digest: string; size: number} | undefined {
  const m = /digest: (sha256:[0-9a-f]{64}) size: (\d+)/.exec(text)
  return m ? {digest: m[1], size: Number(m[2])} : undefined
}

/** Docker's RepoDigests entry for the target's repository (`repo@sha256:…`), if the image has one. */
export function repoDigest(repoDigests: readonly string[], target: PushTarget): string | undefined {
  const prefix = `${target.registry}/${target.repository}@`
  return repoDigests.find(d => d.startsWith(prefix))?.slice(prefix.length)
}
