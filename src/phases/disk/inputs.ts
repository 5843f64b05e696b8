/** The disk inputs: their action.yml defaults, their type, and their parser (pure). */
import {fail, optional, type RawInputs} from '../../input-fields.js'
import {parseDuration, parseSize} from '../../docker/sizes.js'

/** min-free-space, prune-age, build-cache-cap and keep-label with their action.yml defaults. */
export const DISK_INPUTS = {
  'min-free-space': '',
  'prune-age': '24h',
  'build-cache-cap': '10GB',
  'keep-label': 'org.docker-gpu-setup.keep'
} as const

type Raw = RawInputs<keyof typeof DISK_INPUTS>

/** An image label: present (any value), or with this value. */
export interface LabelMatch {
  key: string
  value?: string
}

/** What the disk inputs say. */
export interface DiskInputs {
  /** Bytes to keep free on Docker's data root; undefined: no check. */
  minFreeSpace?: number
  /** Nothing younger is pruned: seconds, and the text as given (for messages). */
  pruneAge: {seconds: number; text: string}
  /** Bytes of build cache kept when space is freed (0: none beyond prune-age). */
  buildCacheCap: number
  /** Images with this label are never pruned; undefined when keep-label is empty. */
  keepLabel?: LabelMatch
}

/** An image the disk phase must never remove, and why (for the failure message). */
export interface KeptImage {
  ref: string
  why: string
}

/** What the disk phase reads: its inputs, and what the other phases need kept. */
export interface DiskSettings extends DiskInputs {
  /** The registries' image and the job's images to push. */
  keepImages: readonly KeptImage[]
  /** Containers with this label are the action's registries: never removed, nor their images. */
  managedLabel: string
  /** The registries' data folders on the host (never touched; named when they hold the space). */
  registryData: readonly string[]
}

function minFree(raw: Raw): number | undefined {
  const value = optional(raw, 'min-free-space')
  if (value === undefined) return undefined
  const bytes = parseSize(value)
  if (bytes === undefined || bytes <= 0) {
    fail(
      'min-free-space',
      value,
      'use a size such as 20GB or 500MiB (KB/MB/GB/TB: powers of 1000; KiB/MiB/GiB/TiB: of 1024)'
    )
  }
  return bytes
}

function buildCacheCap(raw: Raw): number {
  const value = raw['build-cache-cap'].trim()
  const bytes = /^0+$/.test(value) ? 0 : parseSize(value)
  if (bytes === undefined) {
    fail('build-cache-cap', value, 'use a size such as 10GB or 2GiB, or 0 (no build cache kept)')
  }
  return bytes
}

function pruneAge(raw: Raw): {seconds: number; text: string} {
  const text = raw['prune-age'].trim()
  const seconds = parseDuration(text)
  if (seconds === undefined) {
    fail('prune-age', text, 'use an age such as 72h, 7d, 1h30m or 90s (s, m, h, d, w), or 0')
  }
  return {seconds, text}
}

function keepLabel(raw: Raw): LabelMatch | undefined {
  const value = optional(raw, 'keep-label')
  if (value === undefined) return undefined
  const m = /^([A-Za-z0-9][A-Za-z0-9._/-]*)(?:=([^\s,]*))?$/.exec(value)
  if (!m) fail('keep-label', value, 'use a label key such as org.example.keep, or key=value')
  return m[2] === undefined ? {key: m[1]} : {key: m[1], value: m[2]}
}

/** Validates min-free-space, prune-age, build-cache-cap and keep-label (pure); throws InputError. */
export function parseDiskInputs(raw: Raw): DiskInputs {
  return {
    minFreeSpace: minFree(raw),
    pruneAge: pruneAge(raw),
    buildCacheCap: buildCacheCap(raw),
    keepLabel: keepLabel(raw)
  }
}
