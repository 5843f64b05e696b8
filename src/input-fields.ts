/**
 * Readers for single input values (pure apart from `InputHost`), shared by every phase's slice of
 * the inputs. Each throws InputError with one line naming the input, the value and what is accepted.
 */
import {parseReference} from './docker/reference.js'
import {InputError} from './errors.js'

/** Raw input text by name, as the runner passes it (defaults applied). */
export type RawInputs<N extends string> = Readonly<Record<N, string>>
/** auto, true or false, as tristate inputs take them. */
export type Tristate = 'auto' | 'true' | 'false'

/** What input validation may ask of the host: read-only checks. */
export interface InputHost {
  /** 'file', 'dir', or undefined when the path does not exist. */
  pathKind(path: string): 'file' | 'dir' | undefined
}

/** Inputs whose values are secret: never echoed back in an error. */
const SECRET_INPUTS: ReadonlySet<string> = new Set([
  'password',
  'registry-htpasswd',
  'registry-cache-credentials'
])

/** Throws the InputError for `name`; a secret input's value is shown as ***. */
export function fail(name: string, value: string, accepted: string): never {
  throw new InputError(name, SECRET_INPUTS.has(name) && value !== '' ? '***' : value, accepted)
}

/** One of `allowed`, compared without case (`None` is `none`). */
export function oneOf<N extends string, T extends string>(
  raw: RawInputs<N>,
  name: N,
  allowed: readonly T[]
): T {
  const value = raw[name].trim()
  const lower = value.toLowerCase()
  const hit = allowed.find(a => a === lower)
  if (hit === undefined) fail(name, value, `use one of ${allowed.join(', ')}`)
  return hit
}

const TRUE = ['true', 'True', 'TRUE']
const FALSE = ['false', 'False', 'FALSE']

/** YAML 1.2 core booleans: true or false, as core.getBooleanInput reads them; undefined otherwise. */
export function booleanText(value: string): boolean | undefined {
  if (TRUE.includes(value)) return true
  if (FALSE.includes(value)) return false
  return undefined
}

/** A boolean input (YAML 1.2 core booleans, as core.getBooleanInput accepts them). */
export function bool<N extends string>(raw: RawInputs<N>, name: N): boolean {
  const value = raw[name].trim()
  const parsed = booleanText(value)
  return parsed ?? fail(name, value, 'use true or false')
}

/** auto, or a boolean. */
export function tristate<N extends string>(raw: RawInputs<N>, name: N): Tristate {
  const value = raw[name].trim()
  if (value === 'auto') return 'auto'
  const parsed = booleanText(value)
  if (parsed === undefined) fail(name, value, 'use auto, true or false')
  return parsed ? 'true' : 'false'
}

/** A whole number from `min` to `max`. */
export function int<N extends string>(
  raw: RawInputs<N>,
  name: N,
  min: number,
  max: number
): number {
  const value = raw[name].trim()
  const n = Number(value)
  if (!/^\d+$/.test(value) || n < min || n > max) {
    fail(name, value, `use a whole number from ${min} to ${max}`)
  }
  return n
}

/** The trimmed value; undefined when empty. */
export function optional<N extends string>(raw: RawInputs<N>, name: N): string | undefined {
  const value = raw[name].trim()
  return value === '' ? undefined : value
}

/** An absolute URL with one of `schemes` (e.g. 'https:'), trailing slashes dropped; undefined when empty. */
export function url<N extends string>(
  raw: RawInputs<N>,
  name: N,
  schemes: readonly string[]
): string | undefined {
  const value = optional(raw, name)
  if (value === undefined) return undefined
  let parsed: URL | undefined
  try {
    parsed = new URL(value)
  } catch {
    parsed = undefined
  }
  if (
    !parsed ||
    !schemes.includes(parsed.protocol) ||
    (parsed.protocol !== 'file:' && !parsed.host)
  ) {
    fail(name, value, `use an absolute ${schemes.map(s => s.replace(':', '')).join(' or ')} URL`)
  }
  return value.replace(/\/+$/, '')
}

/** An absolute path where a file or folder (`kind`) exists; undefined when empty. */
export function existingPath<N extends string>(
  raw: RawInputs<N>,
  name: N,
  host: InputHost,
  kind: 'file' | 'dir'
): string | undefined {
  const value = optional(raw, name)
  if (value === undefined) return undefined
  const what = kind === 'file' ? 'file' : 'folder'
  if (!value.startsWith('/')) fail(name, value, `use an absolute path to a ${what}`)
  if (host.pathKind(value) !== kind) fail(name, value, `no ${what} exists at that path`)
  return value
}

const PACKAGE_VERSION = /^[0-9][A-Za-z0-9.+~:-]*$/

/** A Debian package version (or its upstream part); undefined when empty. `accepted` gives an example. */
export function packageVersion<N extends string>(
  raw: RawInputs<N>,
  name: N,
  accepted: string
): string | undefined {
  const value = optional(raw, name)
  if (value !== undefined && !PACKAGE_VERSION.test(value)) fail(name, value, accepted)
  return value
}

/** Splits a list input: newlines or commas, whole-line `#` comments and blanks dropped; keeps line numbers. */
export function splitList(text: string): {value: string; line: number}[] {
  const out: {value: string; line: number}[] = []
  text.split(/\r?\n/).forEach((raw, i) => {
    const trimmed = raw.trim()
    if (trimmed === '' || trimmed.startsWith('#')) return
    for (const item of trimmed.split(',')) {
      const value = item.trim()
      if (value !== '') out.push({value, line: i + 1})
    }
  })
  return out
}

/** An image reference (the grammar `docker push` obeys); undefined when empty. */
export function imageReference<N extends string>(raw: RawInputs<N>, name: N): string | undefined {
  const value = optional(raw, name)
  if (value === undefined) return undefined
  try {
    parseReference(value)
  } catch (e) {
    fail(name, value, `not an image reference: ${(e as Error).message}`)
  }
  return value
}
