/**
 * gpu-isolation as data (pure): the two top-level keys of the NVIDIA container toolkit's
 * config.toml that decide whether an unprivileged container's NVIDIA_VISIBLE_DEVICES counts, the
 * record of what strict changed, and the plan that sets them (strict) or puts them back (off).
 */

import {NVIDIA_CTK, RUNTIME_CONFIG} from '../../models/device-loss.js'
import type {IsolationMode} from './inputs.js'

/** The toolkit's config file, read by nvidia-container-runtime and its hook at every container start. */
export const TOOLKIT_CONFIG = RUNTIME_CONFIG

/** What strict changed, and what each key held before (null: the line was not there). */
export const ISOLATION_RECORD = '/var/lib/docker-gpu-setup/gpu-isolation.json'

/**
 * The keys and the values strict sets (api/config/v1/config.go of the toolkit; defaults true and
 * false). With the first false, the toolkit takes NVIDIA_VISIBLE_DEVICES only from a container
 * with CAP_SYS_ADMIN; Docker's `--gpus` arrives as that same variable, so the lease must come as
 * `/dev/null` volume mounts under /var/run/nvidia-container-devices, which the second turns on.
 */
export const STRICT_KEYS = {
  'accept-nvidia-visible-devices-envvar-when-unprivileged': false,
  'accept-nvidia-visible-devices-as-volume-mounts': true
} as const
export type StrictKey = keyof typeof STRICT_KEYS
const KEYS = Object.keys(STRICT_KEYS) as StrictKey[]

/** A key's value, or null where the file has no line for it (the toolkit's default then holds). */
export type KeyValue = boolean | null
export type KeyValues = Record<StrictKey, KeyValue>

/** The record file: what each key held before strict set it. */
export type IsolationRecord = Partial<Record<StrictKey, KeyValue>>

/** A top-level `key = value` line, before the first table (a commented line does not count). */
const lineOf = (key: string): RegExp =>
  new RegExp(`^[ \\t]*${key.replace(/[-.]/g, '\\$&')}[ \\t]*=[ \\t]*(true|false)[ \\t]*(#.*)?$`)

/** Index of the first table header (`[name]`), or the line count: top-level keys come before it. */
function tableStart(lines: readonly string[]): number {
  const i = lines.findIndex(l => /^[ \t]*\[/.test(l))
  return i < 0 ? lines.length : i
}

/** The two keys' values in the file's text. */
export function keyValues(text: string): KeyValues {
  const lines = text.split('\n')
  const top = lines.slice(0, tableStart(lines))
  const out = {} as KeyValues
  for (const key of KEYS) {
    const m = top.map(l => lineOf(key).exec(l)).find(Boolean)
    out[key] = m ? m[1] === 'true' : null
  }
  return out
}

/**
 * The text with `key` set to `value` (null: its line taken out), every other line kept: the line
 * replaced where it is, else added before the first table, as the toolkit's own file lays it out.
 */
export function withKey(text: string, key: StrictKey, value: KeyValue): string {
  const lines = text.split('\n')
  const end = tableStart(lines)
  const at = lines.slice(0, end).findIndex(l => lineOf(key).test(l))
  if (value === null) return at < 0 ? text : lines.filter((_, i) => i !== at).join('\n')
  const line = `${key} = ${value}`
  if (at >= 0) lines[at] = line
  // Before the blank line that ends the top-level keys, where there is one.
  else lines.splice(end > 0 && lines[end - 1] === '' ? end - 1 : end, 0, line)
  return lines.join('\n')
}

/** What the isolation phase found. */
export interface IsolationFacts {
  /** config.toml's text; undefined when there is none (no toolkit). */
  text?: string
  /** The record of an earlier strict; undefined when there is none. */
  record?: IsolationRecord
}

/** The plan: the keys to set (null: take the line out), the record to write or remove. */
export interface IsolationChange {
  set: Partial<Record<StrictKey, KeyValue>>
  /** The record to write (strict), or null to remove it (off); undefined: leave it. */
  record?: IsolationRecord | null
  /** Keys off leaves, with why: someone changed them since strict set them. */
  kept: string[]
}

/**
 * strict: the keys that are not yet strict, each recorded with its value before (a key recorded by
 * an earlier strict keeps that record). off: the recorded keys put back, but only those still as
 * strict left them; then the record goes. Nothing recorded: off changes nothing. keep: nothing.
 */
export function planIsolation(mode: IsolationMode, facts: IsolationFacts): IsolationChange {
  if (mode === 'keep') return {set: {}, kept: []}
  const now = keyValues(facts.text ?? '')
  if (mode === 'strict') {
    const set = Object.fromEntries(
      KEYS.filter(k => now[k] !== STRICT_KEYS[k]).map(k => [k, STRICT_KEYS[k]])
    )
    if (Object.keys(set).length === 0) return {set, kept: []}
    const before = Object.fromEntries(Object.keys(set).map(k => [k, now[k as StrictKey]]))
    return {set, record: {...before, ...facts.record}, kept: []}
  }
  if (facts.record === undefined) return {set: {}, kept: []}
  const recorded = KEYS.filter(k => k in facts.record!)
  const ours = recorded.filter(k => now[k] === STRICT_KEYS[k])
  const set = Object.fromEntries(
    ours.filter(k => now[k] !== facts.record![k]).map(k => [k, facts.record![k] ?? null])
  )
  const kept = recorded
    .filter(k => !ours.includes(k))
    .map(k => `${k} = ${String(now[k])}: changed since strict set it`)
  return {set, record: null, kept}
}

/** Parses the record file; a damaged one counts as none (off then changes nothing). */
export function parseRecord(text: string | undefined): IsolationRecord | undefined {
  if (text === undefined) return undefined
  try {
    const v = JSON.parse(text) as Record<string, unknown>
    const out: IsolationRecord = {}
    for (const k of KEYS) {
      if (v[k] === null || typeof v[k] === 'boolean') out[k] = v[k]
    }
    return out
  } catch {
    return undefined
  }
}

/** nvidia-ctk's version from `nvidia-ctk --version` ("NVIDIA Container Toolkit CLI version 1.14.6"). */
export function ctkVersion(text: string): [number, number] | undefined {
  const m = /version (\d+)\.(\d+)/.exec(text)
  return m ? [Number(m[1]), Number(m[2])] : undefined
}

/**
 * `nvidia-ctk config --set key=value --in-place` arrived in toolkit 1.14.0 (cmd/nvidia-ctk/config
 * in NVIDIA/nvidia-container-toolkit); a bool key cannot be taken out with it, so a key that had
 * no line before strict is taken out by editing the file.
 */
export function ctkCanSet(version: [number, number] | undefined): boolean {
  return version !== undefined && (version[0] > 1 || (version[0] === 1 && version[1] >= 14))
}

/** The nvidia-ctk command that sets `values` in `file` (argv). */
export function ctkSetArgv(file: string, values: Partial<Record<StrictKey, boolean>>): string[] {
  return [
    NVIDIA_CTK,
    'config',
    `--config-file=${file}`,
    '--in-place',
    ...Object.entries(values).map(([k, v]) => `--set=${k}=${String(v)}`)
  ]
}
