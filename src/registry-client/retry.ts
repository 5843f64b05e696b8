/**
 * The one retry policy of a push: which failures are transient (network, 5xx, 429; never auth or
 * names), the backoff between attempts, how many there are, and the line that says so.
 */
import * as core from '@actions/core'
import {errorMessage} from '../errors.js'

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

/** Is a failed push worth another try, by what it printed? Auth and name errors are not; network and 5xx are. */
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

/** A failure that says whether another attempt may succeed (a registry's, a docker push's). */
export interface Judged {
  transient: boolean
}

function isJudgedTransient(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as Partial<Judged>).transient === true
}

/** How a piece of work ended after its attempts: its value, or the last failure. */
export type Attempted<T> =
  {ok: true; value: T; attempts: number} | {ok: false; error: unknown; attempts: number}

const sleep = (s: number): Promise<void> => new Promise(res => setTimeout(res, s * 1000))

/**
 * Runs `work` until it succeeds, fails for good (a failure that is not transient), or `retries`
 * more attempts are spent, waiting the backoff between attempts. Each retry is said once per
 * name in `names` (the targets the work pushes).
 */
export async function retrying<T>(
  retries: number,
  names: readonly string[],
  work: (attempt: number) => Promise<T>,
  wait: (seconds: number) => Promise<void> = sleep
): Promise<Attempted<T>> {
  for (let attempt = 1; ; attempt++) {
    try {
      return {ok: true, value: await work(attempt), attempts: attempt}
    } catch (e) {
      if (attempt > retries || !isJudgedTransient(e))
        return {ok: false, error: e, attempts: attempt}
      const seconds = backoffSeconds(attempt)
      const why = errorMessage(e).split('\n').pop() ?? ''
      for (const name of names) {
        core.info(`${name}: push failed (${why}); retry ${attempt} of ${retries} in ${seconds} s`)
      }
      await wait(seconds)
    }
  }
}
