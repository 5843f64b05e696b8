/**
 * The action's outputs (pure): their names (as action.yml declares them), their typed values and
 * their text. Phases fill an Outputs record as they learn things; output-writer.ts writes it once,
 * at the end of the main step, whether the run succeeded or not.
 */

/** Every output, in action.yml's order. */
export const OUTPUT_NAMES = [
  'docker-version',
  'docker-changed',
  'daemon-config-changed',
  'daemon-change',
  'nvidia-runtime',
  'gpu-count',
  'driver-version',
  'cuda-version',
  'toolkit-version',
  'gpu-device-fix',
  'registry',
  'registry-started',
  'images',
  'digests',
  'caches',
  'gpu-uuids',
  'gpu-indexes',
  'docker-gpus',
  'cdi-devices',
  'gpu-health',
  'freed-bytes',
  'teardown',
  'docker-gpu-options',
  'gpu-isolation'
] as const

/** The name of an output, as action.yml spells it. */
export type OutputName = (typeof OUTPUT_NAMES)[number]

/** What happened to one image: pushed, already in the registry, or not pushed. */
export type ImageStatus = 'pushed' | 'unchanged' | 'failed'

/** One row of the `images` output. */
export interface ImageResult {
  source: string
  target: string
  digest: string
  size: number
  status: ImageStatus
  /** Why it failed (not one of the documented fields, but useful in the output). */
  error?: string
}

/** A GPU leased to this job, in index order. */
export interface GpuLeaseResult {
  index: number
  uuid: string
  name: string
  /** Taken now, already the job's (an earlier step), or taken from a job that has ended. */
  how: 'leased' | 'reused' | 'taken over'
  /** For a take-over: who held it. */
  from?: string
}

/** The health gate's verdict: by GPU UUID, whether it is healthy and its problems with evidence. */
export interface GpuHealthResult {
  /** gpu-health: fail: the unhealthy GPUs are kept from the job and from the GPU check. */
  enforced: boolean
  gpus: Readonly<Record<string, {healthy: boolean; problems: readonly string[]}>>
}

/** What the disk phase measured and removed on Docker's data root. */
export interface DiskResult {
  dataRoot: string
  minFree: number
  freeBefore: number
  freeAfter: number
  /** Bytes freed: free space after the removals less free space before (0 when none). */
  freedBytes: number
  /** What was removed, in order, one line each. */
  removed: string[]
  /** `docker system df` before and after the removals (only when something was to be removed). */
  dfBefore?: string
  dfAfter?: string
}

/** One thing teardown removed or left, and why. */
export interface TeardownItem {
  kind: 'container' | 'network' | 'process'
  id: string
  why: string
}

/** What teardown removed and what it left (the `teardown` output). */
export interface TeardownResult {
  removed: TeardownItem[]
  kept: TeardownItem[]
}

/** The `teardown` output: JSON {removed, kept}, each a list of {kind, id, why}. */
export function teardownJson(r: TeardownResult): string {
  const items = (xs: TeardownItem[]) => xs.map(i => ({kind: i.kind, id: i.id, why: i.why}))
  return JSON.stringify({removed: items(r.removed), kept: items(r.kept)})
}

/** What the run found and did; undefined is written as an empty output. */
export interface Outputs {
  dockerVersion?: string
  dockerChanged?: boolean
  daemonConfigChanged?: boolean
  /** How a daemon.json change reached the running daemon: a reload (SIGHUP) or a restart. */
  daemonChange?: 'reload' | 'restart' | 'start' | 'none'
  nvidiaRuntime?: boolean
  /** The host's driver and GPUs; undefined without a driver. */
  gpu?: {count: number; driverVersion: string; cudaVersion?: string}
  /** The installed nvidia-container-toolkit's version; undefined when it is not installed. */
  toolkitVersion?: string
  /** The fix that keeps containers' GPUs across daemon-reload: cdi, dev-char-symlinks, upgrade-toolkit or none. */
  gpuDeviceFix?: string
  /** The leased GPUs' CDI names where CDI is on; undefined otherwise. */
  cdiDevices?: readonly string[]
  registry?: string
  registryStarted?: boolean
  /** Kept as data until written. */
  images?: readonly ImageResult[]
  /** Each registry-caches upstream → the address of its pull-through cache. */
  caches?: Readonly<Record<string, string>>
  /** The GPUs leased to this job; undefined when gpus is not set. */
  gpuLeases?: readonly GpuLeaseResult[]
  /** Undefined when the health gate did not run (gpu-health: off, or no NVIDIA driver). */
  gpuHealth?: GpuHealthResult
  /** Undefined when min-free-space is not set. */
  disk?: DiskResult
  /** What teardown of an ended job's GPUs removed and left; undefined when none ran. */
  teardown?: TeardownResult
  /** gpu-isolation as the run left it; undefined when the phase did not run. */
  gpuIsolation?: GpuIsolationResult
}

/** The `gpu-isolation` output: the mode, the toolkit's file, what this run changed, the keys now. */
export interface GpuIsolationResult {
  mode: 'keep' | 'off' | 'strict'
  config: string
  /** Keys this run set (null: taken out of the file, the toolkit's default holds again). */
  changed: Readonly<Record<string, boolean | null>>
  keys?: Readonly<Record<string, boolean | null>>
}

const text = (v: string | boolean | number | undefined): string =>
  v === undefined ? '' : String(v)

/** The `images` output: JSON array of {source, target, digest, size, status[, error]}. */
export function imagesJson(images: readonly ImageResult[]): string {
  return JSON.stringify(
    images.map(r => ({
      source: r.source,
      target: r.target,
      digest: r.digest,
      size: r.size,
      status: r.status,
      ...(r.error ? {error: r.error} : {})
    }))
  )
}

/** The `digests` output: `target@digest` lines for what is in the registry. */
export function digestsText(images: readonly ImageResult[]): string {
  return images
    .filter(r => r.status !== 'failed' && r.digest !== '')
    .map(r => `${r.target}@${r.digest}`)
    .join('\n')
}

/** The `docker-gpus` output: `"device=GPU-a,GPU-b"`, quoted so that `--gpus` does not split it. */
export function dockerGpus(leases: readonly GpuLeaseResult[]): string {
  return leases.length === 0 ? '' : `"device=${leases.map(l => l.uuid).join(',')}"`
}

/**
 * The `docker-gpu-options` output: the lease as `docker run` options for the nvidia runtime that
 * hold in both gpu-isolation modes: `-e NVIDIA_VISIBLE_DEVICES=<uuids>` (what the toolkit reads
 * with isolation off; it replaces an image's `all`) and one
 * `-v /dev/null:/var/run/nvidia-container-devices/<uuid>` per GPU (what it reads with strict,
 * where the variable no longer counts). No word holds a space: split it as words.
 */
export function dockerGpuOptions(leases: readonly {uuid: string}[]): string {
  if (leases.length === 0) return ''
  return [
    `-e NVIDIA_VISIBLE_DEVICES=${leases.map(l => l.uuid).join(',')}`,
    ...leases.map(l => `-v /dev/null:/var/run/nvidia-container-devices/${l.uuid}`)
  ].join(' ')
}

/** Every output's text (pure); an output nothing set is empty. */
export function outputValues(o: Outputs): Record<OutputName, string> {
  return {
    'docker-version': text(o.dockerVersion),
    'docker-changed': text(o.dockerChanged),
    'daemon-config-changed': text(o.daemonConfigChanged),
    'daemon-change': text(o.daemonChange),
    'nvidia-runtime': text(o.nvidiaRuntime),
    'gpu-count': text(o.gpu?.count),
    'driver-version': text(o.gpu?.driverVersion),
    'cuda-version': text(o.gpu?.cudaVersion),
    'toolkit-version': text(o.toolkitVersion),
    'gpu-device-fix': text(o.gpuDeviceFix),
    registry: text(o.registry),
    'registry-started': text(o.registryStarted),
    images: o.images === undefined ? '' : imagesJson(o.images),
    digests: o.images === undefined ? '' : digestsText(o.images),
    caches: o.caches === undefined ? '' : JSON.stringify(o.caches),
    'gpu-uuids': (o.gpuLeases ?? []).map(l => l.uuid).join(','),
    'gpu-indexes': (o.gpuLeases ?? []).map(l => l.index).join(','),
    'docker-gpus': dockerGpus(o.gpuLeases ?? []),
    'cdi-devices': (o.cdiDevices ?? []).join(','),
    'gpu-health': o.gpuHealth === undefined ? '' : JSON.stringify(o.gpuHealth.gpus),
    'freed-bytes': text(o.disk?.freedBytes),
    teardown: o.teardown === undefined ? '' : teardownJson(o.teardown),
    'docker-gpu-options': dockerGpuOptions(o.gpuLeases ?? []),
    'gpu-isolation': o.gpuIsolation === undefined ? '' : JSON.stringify(o.gpuIsolation)
  }
}
