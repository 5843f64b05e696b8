/** A push's results as data (pure): one row per target, the digest `docker push` prints, registry digests. */
import type {ImageResult} from '../../outputs.js'
import type {PushTarget} from './image-list.js'

/** One target's result: a row of the `images` output, and how many attempts it took. */
export interface PushResult extends ImageResult {
  attempts?: number
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

/** A target that did not land: why, after how many attempts. */
export function failed(t: PushTarget, error: string, attempts: number): PushResult {
  return {
    source: t.source,
    target: t.target,
    digest: '',
    size: 0,
    status: 'failed',
    error,
    attempts
  }
}
