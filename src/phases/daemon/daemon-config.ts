/**
 * The model of /etc/docker/daemon.json (pure): parse with a useful error, deep merge of the
 * fragments the inputs and phases contribute, stable serialisation, and a diff a person can read.
 */
import {
  canonical,
  isJsonObject as isObject,
  type Fragment,
  type Json,
  type JsonObject
} from '../../docker/daemon-fragment.js'
import {hasCredentials} from '../../docker/proxy.js'

/** A malformed daemon.json: the parser's message and the line it points at. */
export class DaemonConfigParseError extends Error {
  constructor(
    readonly detail: string,
    readonly line: number | undefined
  ) {
    super(`${detail}${line === undefined ? '' : ` (line ${line})`}`)
    this.name = 'DaemonConfigParseError'
  }
}

/** Where JSON.parse stopped in `text`, as its message says (`at position N`, or the end). */
function positionIn(message: string, text: string): number | undefined {
  if (message.startsWith('Unexpected end of JSON input')) return text.length
  const m = /at position (\d+)/.exec(message)
  return m ? Number(m[1]) : undefined
}

/** Whether `prefix` is JSON, or JSON cut short: nothing wrong before its end. */
function soundUpTo(prefix: string): boolean {
  try {
    JSON.parse(prefix)
    return true
  } catch (e) {
    return positionIn((e as Error).message, prefix) === prefix.length
  }
}

/**
 * Offset of the first syntax error in JSON text, given JSON.parse's message. Node's message says
 * where, except for an unexpected token, which it quotes without a place (`Unexpected token 'x',
 * "…" is not valid JSON`): that is the first such character before which nothing is wrong.
 */
export function jsonErrorOffset(text: string, message: string): number {
  const at = positionIn(message, text)
  if (at !== undefined) return at
  const token = /^Unexpected token '(.)'/.exec(message)?.[1]
  if (token === undefined) return -1
  for (let i = text.indexOf(token); i >= 0; i = text.indexOf(token, i + 1)) {
    if (soundUpTo(text.slice(0, i))) return i
  }
  return -1
}

/** Parses daemon.json text; an empty or whitespace-only file is an empty config (dockerd agrees). */
export function parseDaemonConfig(text: string): JsonObject {
  if (text.trim() === '') return {}
  let parsed: Json
  try {
    parsed = JSON.parse(text) as Json
  } catch (e) {
    const at = jsonErrorOffset(text, (e as Error).message)
    if (at < 0) throw new DaemonConfigParseError((e as Error).message.split('\n')[0], undefined)
    const before = text.slice(0, at).split('\n')
    const what =
      at >= text.length ? 'unexpected end of file' : `unexpected ${JSON.stringify(text[at])}`
    throw new DaemonConfigParseError(
      `${what} at column ${before[before.length - 1].length + 1}`,
      before.length
    )
  }
  if (!isObject(parsed)) throw new DaemonConfigParseError('the top level is not a JSON object', 1)
  return parsed
}

function same(a: Json | undefined, b: Json | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

/** A key the inputs changed from what the file held. */
export interface Overwrite {
  path: string
  from: Json
  to: Json
  source: string
}

/**
 * Deep-merges `fragment` into `base`: objects key by key, arrays as a union without duplicates
 * (base order first), anything else replaced. Unknown keys are kept. Records overwritten scalars.
 */
function mergeInto(
  base: JsonObject,
  fragment: JsonObject,
  source: string,
  prefix: string,
  overwrites: Overwrite[]
): JsonObject {
  const out: JsonObject = {...base}
  for (const [key, value] of Object.entries(fragment)) {
    const path = prefix ? `${prefix}.${key}` : key
    const old = out[key]
    if (isObject(old) && isObject(value)) {
      out[key] = mergeInto(old, value, source, path, overwrites)
    } else if (Array.isArray(old) && Array.isArray(value)) {
      const union = [...old]
      for (const item of value) if (!union.some(u => same(u, item))) union.push(item)
      out[key] = union
    } else {
      if (old !== undefined && !same(old, value))
        overwrites.push({path, from: old, to: value, source})
      out[key] = value
    }
  }
  return out
}

/** Scalar paths a fragment sets, for contradiction checks between fragments. */
function scalarPaths(value: JsonObject, prefix = ''): Map<string, Json> {
  const out = new Map<string, Json>()
  for (const [k, v] of Object.entries(value)) {
    const path = prefix ? `${prefix}.${k}` : k
    if (isObject(v)) for (const [p, x] of scalarPaths(v, path)) out.set(p, x)
    else if (!Array.isArray(v)) out.set(path, v)
  }
  return out
}

/** Two fragments that set one key to different values: the inputs contradict each other. */
export function contradictions(fragments: readonly Fragment[]): string[] {
  const seen = new Map<string, {value: Json; source: string}>()
  const out: string[] = []
  for (const f of fragments) {
    for (const [path, value] of scalarPaths(f.value)) {
      const prior = seen.get(path)
      if (prior && !same(prior.value, value)) {
        out.push(
          `${path}: ${prior.source} sets ${JSON.stringify(prior.value)} but ${f.source} sets ${JSON.stringify(value)}`
        )
      } else seen.set(path, {value, source: f.source})
    }
  }
  return out
}

/** The merged config and every key it overwrote in the file. */
export function mergeFragments(
  current: JsonObject,
  fragments: readonly Fragment[]
): {merged: JsonObject; overwrites: Overwrite[]} {
  const overwrites: Overwrite[] = []
  let merged = current
  for (const f of fragments) merged = mergeInto(merged, f.value, f.source, '', overwrites)
  return {merged, overwrites}
}

/** Stable text: two-space JSON, keys in the order the file had them (new ones after), newline at the end. */
export function serialiseDaemonConfig(config: JsonObject): string {
  return `${JSON.stringify(config, null, 2)}\n`
}

/**
 * True when the file's text holds a secret: a proxy URL with a user or password. Such a file is
 * kept 0600 (dockerd reads it as root; no one else needs to). Unreadable text holds none.
 */
export function holdsSecret(text: string): boolean {
  let config: JsonObject
  try {
    config = parseDaemonConfig(text)
  } catch {
    return false
  }
  const proxies = isObject(config.proxies) ? config.proxies : {}
  return ['http-proxy', 'https-proxy'].some(k => {
    const v = proxies[k]
    return typeof v === 'string' && hasCredentials(v)
  })
}

/** True when both configs mean the same to dockerd (key order aside). */
export function sameConfig(a: JsonObject, b: JsonObject): boolean {
  return same(canonical(a), canonical(b))
}

/** A readable diff, one line per changed leaf: `+ path: value`, `- path: value`, `~ path: old → new`. */
export function diffConfigs(before: JsonObject, after: JsonObject, prefix = ''): string[] {
  const lines: string[] = []
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])]
  for (const key of keys) {
    const path = prefix ? `${prefix}.${key}` : key
    const a = before[key]
    const b = after[key]
    if (same(a, b)) continue
    if (isObject(a) && isObject(b)) lines.push(...diffConfigs(a, b, path))
    else if (a === undefined) lines.push(`+ ${path}: ${JSON.stringify(b)}`)
    else if (b === undefined) lines.push(`- ${path}: ${JSON.stringify(a)}`)
    else lines.push(`~ ${path}: ${JSON.stringify(a)} → ${JSON.stringify(b)}`)
  }
  return lines
}
