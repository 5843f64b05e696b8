/**
 * Everything the post step reads, saved by the main step through the runner's step state
 * (core.saveState / core.getState): which step this is, the validated `cleanup`, the job's
 * DOCKER_CONFIG, the registry containers this job started and the GPU leases this step took.
 */
import * as core from '@actions/core'

/** What the post step undoes: nothing, the registry containers this job started, or all it made. */
export type Cleanup = 'none' | 'registry' | 'all'

/** The runner's step state; tests give a map instead. */
export interface StateStore {
  get(name: string): string
  save(name: string, value: string): void
}

/** A GPU lease this step took: the post step releases it if that worker process still holds it. */
export interface SavedLease {
  uuid: string
  index: number
  /** The job's worker process the lease names. */
  pid: number
  start: string
}

/** What the post step acts on. */
export interface PostState {
  cleanup: Cleanup
  /** The per-job DOCKER_CONFIG a login made; removed in any case. */
  dockerConfig?: string
  /** Registry containers this job created or started. */
  registryContainers: string[]
  /** GPU leases this step took (not those it found already held by its job). */
  gpuLeases: SavedLease[]
  /** Whether the post step removes what the job left (the validated `teardown`). */
  teardown: boolean
}

/** What a phase records for the post step, as soon as it exists (a later failure must not lose it). */
export type PostStateUpdate = Partial<
  Pick<PostState, 'dockerConfig' | 'registryContainers' | 'gpuLeases'>
>

// The names are kept across versions: a post step reads what the same bundle's main step saved.
const KEY = {
  isPost: 'isPost',
  cleanup: 'cleanup',
  dockerConfig: 'docker-config',
  registryContainers: 'registry-containers',
  gpuLeases: 'gpu-leases',
  teardown: 'teardown'
} as const

/** The runner's step state (core.getState / core.saveState). */
export const runnerState: StateStore = {
  get: name => core.getState(name),
  save: (name, value) => core.saveState(name, value)
}

/** True in the post step: the main step marked the state before it did anything else. */
export function isPostStep(store: StateStore = runnerState): boolean {
  return store.get(KEY.isPost) === 'true'
}

/** Marks the state so that the same bundle, run again as the post step, knows it is the post step. */
export function markMainStep(store: StateStore = runnerState): void {
  store.save(KEY.isPost, 'true')
}

/** Saves the validated `cleanup` for the post step. */
export function saveCleanup(cleanup: Cleanup, store: StateStore = runnerState): void {
  store.save(KEY.cleanup, cleanup)
}

/** Saves whether the post step tears down what the job left. */
export function saveTeardown(on: boolean, store: StateStore = runnerState): void {
  store.save(KEY.teardown, String(on))
}

/** Saves what a phase made that the post step may remove. */
export function savePostState(update: PostStateUpdate, store: StateStore = runnerState): void {
  if (update.dockerConfig !== undefined) store.save(KEY.dockerConfig, update.dockerConfig)
  if (update.registryContainers !== undefined) {
    store.save(KEY.registryContainers, JSON.stringify(update.registryContainers))
  }
  if (update.gpuLeases !== undefined) store.save(KEY.gpuLeases, JSON.stringify(update.gpuLeases))
}

/** A JSON list saved by this bundle; anything else (never written, damaged) is empty. */
function savedList(text: string): unknown[] {
  try {
    const v: unknown = JSON.parse(text || '[]')
    return Array.isArray(v) ? v : []
  } catch {
    return []
  }
}

function savedLease(v: unknown): SavedLease[] {
  const l = v as Partial<SavedLease> | null
  return typeof l?.uuid === 'string' &&
    typeof l.index === 'number' &&
    typeof l.pid === 'number' &&
    typeof l.start === 'string'
    ? [{uuid: l.uuid, index: l.index, pid: l.pid, start: l.start}]
    : []
}

/** Reads what the main step saved; a main step that failed before saving `cleanup` means none. */
export function readPostState(store: StateStore = runnerState): PostState {
  const cleanup = store.get(KEY.cleanup)
  return {
    cleanup: cleanup === 'registry' || cleanup === 'all' ? cleanup : 'none',
    dockerConfig: store.get(KEY.dockerConfig) || undefined,
    registryContainers: savedList(store.get(KEY.registryContainers)).map(String),
    gpuLeases: savedList(store.get(KEY.gpuLeases)).flatMap(savedLease),
    teardown: store.get(KEY.teardown) === 'true'
  }
}
