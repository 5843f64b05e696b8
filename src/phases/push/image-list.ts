/** The `images` and `tags` inputs as push targets (pure), mapped as the contract's "Targets" says. */
import {
  formatReference,
  looksLikeDomain,
  parseReference,
  type ImageReference,
  type RegistryAddress
} from '../../docker/reference.js'
import {splitList} from '../../input-fields.js'

/** One push: a local source image and the reference it is pushed as. */
export interface PushTarget {
  /** The local image as the user wrote it (what `docker image inspect` and `docker tag` take). */
  source: string
  /** Full target reference, `registry/path:tag`. */
  target: string
  /** Target registry `host[:port]`. */
  registry: string
  /** Target repository path within that registry. */
  repository: string
  tag: string
  /** 1-based line of `images` the target came from (for messages). */
  line: number
}

const HUB_DOMAINS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io'])

/** The source's path in the target registry: its own registry host and Docker Hub's `library/` dropped. */
function pathWithoutHost(ref: ImageReference): string {
  if (
    (ref.domain === undefined || HUB_DOMAINS.has(ref.domain)) &&
    ref.path.startsWith('library/')
  ) {
    return ref.path.slice('library/'.length)
  }
  return ref.path
}

/** A bad item of a list input: the item as written, its line, and why. */
export class ListItemError extends Error {
  constructor(
    readonly item: string,
    readonly line: number,
    readonly reason: string
  ) {
    super(`line ${line} (${JSON.stringify(item)}): ${reason}`)
    this.name = 'ListItemError'
  }
}

const TAG = /^[\w][\w.-]{0,127}$/

/** Parses `tags`: each must be a valid tag. */
export function parseTagList(text: string): string[] {
  return splitList(text).map(({value, line}) => {
    if (!TAG.test(value)) {
      throw new ListItemError(
        value,
        line,
        'not a tag (letters, digits, _ . -, not starting with . or -, at most 128)'
      )
    }
    return value
  })
}

/** A reference of one `images` line, or a ListItemError naming the line. */
function referenceOn(text: string, line: number): ImageReference {
  try {
    return parseReference(text)
  } catch (e) {
    throw new ListItemError(text, line, `${(e as Error).message}`)
  }
}

/** Where one `images` line goes: the registry, the repository path and the tag before `tags`. */
function destination(
  source: ImageReference,
  sourceText: string,
  targetText: string | undefined,
  line: number,
  registry: RegistryAddress
): {domain: string; path: string; tag: string} {
  const byDigest = source.digest !== undefined && source.tag === undefined
  if (targetText === undefined) {
    if (byDigest) {
      throw new ListItemError(
        sourceText,
        line,
        `a source given by digest needs an explicit '=> target:tag'`
      )
    }
    return {domain: registry.text, path: pathWithoutHost(source), tag: source.tag ?? 'latest'}
  }
  const target = referenceOn(targetText, line)
  if (target.digest !== undefined) {
    throw new ListItemError(targetText, line, `a target cannot have a digest; give it a tag`)
  }
  if (target.tag === undefined && byDigest) {
    throw new ListItemError(targetText, line, `a source given by digest needs a target tag`)
  }
  const first = targetText.split('/')[0]
  const domain =
    target.domain !== undefined && looksLikeDomain(first) ? target.domain : registry.text
  return {domain, path: target.path, tag: target.tag ?? source.tag ?? 'latest'}
}

/**
 * Parses `images` and `tags` into push targets, mapped as the contract's "Targets" says.
 * Throws ListItemError naming the line; duplicates are removed, two sources for one target are refused.
 */
export function parseImageList(
  imagesText: string,
  extraTags: readonly string[],
  registry: RegistryAddress
): PushTarget[] {
  const byTarget = new Map<string, PushTarget>()
  for (const {value, line} of splitList(imagesText)) {
    const [sourceText, targetText, ...more] = value.split('=>').map(s => s.trim())
    if (more.length > 0 || sourceText === '' || targetText === '') {
      throw new ListItemError(value, line, `write 'source' or 'source => target'`)
    }
    const source = referenceOn(sourceText, line)
    const {domain, path, tag} = destination(source, sourceText, targetText, line, registry)
    for (const t of [tag, ...extraTags]) {
      const targetRef = formatReference({domain, path, tag: t})
      const existing = byTarget.get(targetRef)
      if (existing !== undefined) {
        if (existing.source !== sourceText) {
          throw new ListItemError(
            value,
            line,
            `target ${targetRef} is also the target of ${existing.source} on line ${existing.line}`
          )
        }
        continue
      }
      const repository = path
      byTarget.set(targetRef, {
        source: sourceText,
        target: targetRef,
        registry: domain,
        repository,
        tag: t,
        line
      })
    }
  }
  return [...byTarget.values()]
}
