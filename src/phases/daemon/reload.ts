/**
 * Which daemon.json changes dockerd applies on a reload (SIGHUP) and which need a restart, and how
 * to see in `docker info` that a reload took (pure).
 */
import {canonical, type Json, type JsonObject} from '../../docker/daemon-fragment.js'

/**
 * Keys dockerd (20.10 to 28, Linux) applies on SIGHUP: its Reload (daemon/reload.go,
 * reload_unix.go) updates exactly these, and keeps running containers. Every other key (log-opts,
 * log-driver, data-root, storage-driver, proxies, features, …) is read only at start. Features are
 * accepted by a reload but what they switch (the containerd image store, CDI) is set up at start.
 */
export const RELOADABLE_KEYS: readonly string[] = [
  'allow-nondistributable-artifacts',
  'debug',
  'default-ipc-mode',
  'default-runtime',
  'default-shm-size',
  'insecure-registries',
  'labels',
  'live-restore',
  'max-concurrent-downloads',
  'max-concurrent-uploads',
  'max-download-attempts',
  'network-diagnostic-port',
  'registry-mirrors',
  'runtimes',
  'shutdown-timeout'
]

/** The top-level keys whose value differs between two configs, sorted. */
export function changedKeys(before: JsonObject, after: JsonObject): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)])
  const same = (k: string) =>
    JSON.stringify(canonical(before[k] ?? null)) === JSON.stringify(canonical(after[k] ?? null)) &&
    k in before === k in after
  return [...keys].filter(k => !same(k)).sort()
}

/**
 * Splits changed keys into what a reload applies and what forces a restart. A removed key always
 * forces one: a reload keeps the value of a key the file no longer sets.
 */
export function classifyChange(
  before: JsonObject,
  after: JsonObject
): {reload: string[]; restart: string[]} {
  const keys = changedKeys(before, after)
  const restart = keys.filter(k => !RELOADABLE_KEYS.includes(k) || !(k in after))
  return {reload: keys.filter(k => !restart.includes(k)), restart}
}

/** What `docker info` says about the keys a reload can be seen to apply. */
export interface LoadedConfig {
  runtimes: string[]
  defaultRuntime: string
  mirrors: string[]
  /** Registries the daemon treats as insecure: index names, and CIDRs. */
  insecure: string[]
  liveRestore: boolean
  debug: boolean
  labels: string[]
  /** The daemon is a swarm node: live-restore is refused there. */
  swarm: boolean
  /** `systemd` or `cgroupfs`: with systemd, daemon-reload rewrites containers' device rules. */
  cgroupDriver?: string
  serverVersion?: string
  /** Where the daemon reads CDI specs; empty when CDI is off (Docker before 25, or not enabled). */
  cdiSpecDirs?: string[]
}

const noSlash = (s: string) => s.replace(/\/+$/, '')
const strings = (v: Json | undefined): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []

/**
 * The keys of `config` the running daemon has not taken, among those `docker info` shows (others
 * cannot be seen and are trusted). A reload that leaves any is treated as needing a restart.
 */
export function notTaken(
  config: JsonObject,
  loaded: LoadedConfig,
  keys: readonly string[]
): string[] {
  const missing: string[] = []
  const check = (key: string, ok: boolean) => {
    if (keys.includes(key) && !ok) missing.push(key)
  }
  const runtimes = config.runtimes
  check(
    'runtimes',
    typeof runtimes === 'object' && runtimes !== null && !Array.isArray(runtimes)
      ? Object.keys(runtimes).every(r => loaded.runtimes.includes(r))
      : true
  )
  check('default-runtime', (config['default-runtime'] ?? 'runc') === loaded.defaultRuntime)
  check(
    'registry-mirrors',
    strings(config['registry-mirrors']).every(m => loaded.mirrors.map(noSlash).includes(noSlash(m)))
  )
  check(
    'insecure-registries',
    strings(config['insecure-registries']).every(r => loaded.insecure.includes(r))
  )
  check('live-restore', (config['live-restore'] ?? false) === loaded.liveRestore)
  check('debug', (config.debug ?? false) === loaded.debug)
  check(
    'labels',
    strings(config.labels).every(l => loaded.labels.includes(l))
  )
  return missing
}

/** `docker info --format '{{json .}}'` → what it says of the keys above. */
export function parseLoadedConfig(json: string): LoadedConfig | undefined {
  try {
    const info = JSON.parse(json) as {
      Runtimes?: Record<string, unknown>
      DefaultRuntime?: string
      RegistryConfig?: {
        Mirrors?: string[] | null
        InsecureRegistryCIDRs?: string[] | null
        IndexConfigs?: Record<string, {Secure?: boolean}> | null
      }
      LiveRestoreEnabled?: boolean
      Debug?: boolean
      Labels?: string[] | null
      Swarm?: {LocalNodeState?: string}
      CgroupDriver?: string
      ServerVersion?: string
      CDISpecDirs?: string[] | null
    }
    const reg = info.RegistryConfig ?? {}
    const insecureIndexes = Object.entries(reg.IndexConfigs ?? {})
      .filter(([, c]) => c.Secure === false)
      .map(([name]) => name)
    return {
      runtimes: Object.keys(info.Runtimes ?? {}),
      defaultRuntime: info.DefaultRuntime ?? 'runc',
      mirrors: reg.Mirrors ?? [],
      insecure: [...insecureIndexes, ...(reg.InsecureRegistryCIDRs ?? [])],
      liveRestore: info.LiveRestoreEnabled === true,
      debug: info.Debug === true,
      labels: info.Labels ?? [],
      swarm: ['active', 'pending', 'locked'].includes(info.Swarm?.LocalNodeState ?? ''),
      cgroupDriver: info.CgroupDriver,
      serverVersion: info.ServerVersion,
      cdiSpecDirs: info.CDISpecDirs ?? []
    }
  } catch {
    return undefined
  }
}
