/**
 * What teardown reads, as data (pure): `docker inspect` of containers and networks, the
 * container a process runs in (its /proc cgroup), and nvidia-smi's per-process and memory queries.
 */

/** The GPUs a container can reach: named ones (UUID or index, as given), or every one. */
export interface GpuAccess {
  all: boolean
  ids: string[]
}

/** One container, as far as teardown judges it. */
export interface ContainerFacts {
  id: string
  name: string
  /** Creation time, ms since the epoch. */
  created: number
  running: boolean
  /** Its main process's pid as the daemon sees it (State.Pid); 0 when it does not run. */
  pid: number
  labels: Readonly<Record<string, string>>
  /** The restart policy's name (`no`, `always`, `unless-stopped`, `on-failure`). */
  restart: string
  gpus: GpuAccess
  /** IDs of the networks it is attached to (a stopped container keeps them). */
  networks: string[]
}

/** One user-defined network. */
export interface NetworkFacts {
  id: string
  name: string
  created: number
  labels: Readonly<Record<string, string>>
}

interface InspectedContainer {
  Id?: string
  Name?: string
  Created?: string
  State?: {Running?: boolean; Pid?: number}
  Config?: {Env?: string[] | null; Labels?: Record<string, string> | null}
  HostConfig?: {
    Runtime?: string
    RestartPolicy?: {Name?: string}
    DeviceRequests?:
      | {
          Driver?: string
          Count?: number
          DeviceIDs?: string[] | null
          Capabilities?: string[][] | null
        }[]
      | null
  }
  NetworkSettings?: {Networks?: Record<string, {NetworkID?: string}> | null}
}

/** The CDI name prefix of NVIDIA's GPUs (`--device nvidia.com/gpu=0`, Docker 25 and later). */
const CDI_GPU = 'nvidia.com/gpu='

/**
 * The GPUs one device request asks for (`--gpus`, or a CDI `--device nvidia.com/gpu=<index, UUID
 * or all>`); undefined when it is not a GPU request.
 */
function requestedGpus(
  r: NonNullable<NonNullable<InspectedContainer['HostConfig']>['DeviceRequests']>[number]
): GpuAccess | undefined {
  if (r.Driver === 'cdi') {
    const names = (r.DeviceIDs ?? [])
      .filter(d => d.startsWith(CDI_GPU))
      .map(d => d.slice(CDI_GPU.length))
    if (names.length === 0) return undefined
    return {all: names.includes('all'), ids: names.filter(n => n !== 'all')}
  }
  const gpu = r.Driver === 'nvidia' || (r.Capabilities ?? []).some(set => set.includes('gpu'))
  if (!gpu) return undefined
  const ids = r.DeviceIDs ?? []
  // `--gpus N` gets the first N GPUs the driver lists: which ones is not written down.
  if (ids.length === 0) return {all: (r.Count ?? 0) !== 0, ids: []}
  return {all: false, ids}
}

/**
 * The GPUs a container can reach: its `--gpus` and CDI device requests, and NVIDIA_VISIBLE_DEVICES where
 * the NVIDIA runtime reads it (the container runs with it: an image's `all` counts only there).
 */
export function gpuAccess(c: InspectedContainer): GpuAccess {
  const out: GpuAccess = {all: false, ids: []}
  for (const r of c.HostConfig?.DeviceRequests ?? []) {
    const g = requestedGpus(r)
    if (g) {
      out.all ||= g.all
      out.ids.push(...g.ids)
    }
  }
  const env = (c.Config?.Env ?? []).find(e => e.startsWith('NVIDIA_VISIBLE_DEVICES='))
  if (env !== undefined && c.HostConfig?.Runtime === 'nvidia') {
    const value = env.slice('NVIDIA_VISIBLE_DEVICES='.length).trim()
    if (value === 'all') out.all = true
    else if (value !== '' && value !== 'none' && value !== 'void') {
      out.ids.push(
        ...value
          .split(',')
          .map(v => v.trim())
          .filter(Boolean)
      )
    }
  }
  return out
}

/** Parses `docker inspect` of containers (a JSON array); an entry without an ID is skipped. */
export function parseContainers(json: string): ContainerFacts[] {
  const list = JSON.parse(json || '[]') as InspectedContainer[]
  return list.flatMap(c => {
    if (!c.Id) return []
    return [
      {
        id: c.Id,
        name: (c.Name ?? '').replace(/^\//, '') || c.Id.slice(0, 12),
        created: Date.parse(c.Created ?? '') || 0,
        running: c.State?.Running === true,
        pid: c.State?.Pid ?? 0,
        labels: c.Config?.Labels ?? {},
        restart: c.HostConfig?.RestartPolicy?.Name || 'no',
        gpus: gpuAccess(c),
        networks: Object.values(c.NetworkSettings?.Networks ?? {})
          .map(n => n.NetworkID ?? '')
          .filter(Boolean)
      }
    ]
  })
}

/** Docker's own networks: never removed. */
const BUILTIN_NETWORKS = new Set(['bridge', 'host', 'none', 'docker_gwbridge', 'ingress'])

/** Parses `docker network inspect` (a JSON array); Docker's own networks are left out. */
export function parseNetworks(json: string): NetworkFacts[] {
  const list = JSON.parse(json || '[]') as {
    Id?: string
    Name?: string
    Created?: string
    Labels?: Record<string, string> | null
  }[]
  return list.flatMap(n =>
    n.Id && n.Name && !BUILTIN_NETWORKS.has(n.Name)
      ? [
          {
            id: n.Id,
            name: n.Name,
            created: Date.parse(n.Created ?? '') || 0,
            labels: n.Labels ?? {}
          }
        ]
      : []
  )
}

/**
 * The Docker containers a process may run in, from /proc/<pid>/cgroup: every `docker-<id>.scope`
 * (the systemd cgroup driver) and `docker/<id>` (cgroupfs) in its paths, innermost last. A host
 * that is itself a container shows its own ID first: the caller keeps the one its Docker knows.
 */
export function containersOfCgroup(text: string): string[] {
  return [...text.matchAll(/(?:docker-|\/docker\/)([0-9a-f]{64})(?=\.scope|\/|$)/gm)].map(m => m[1])
}

/**
 * This process sees the host's pids (it runs in the pid namespace Docker's containers are
 * started from): at least one container runs, and the pid Docker gives for each running one is, in
 * this /proc, a process in that container's cgroup. A runner in a container of its own sees other
 * pids (or none) there.
 */
export function inHostPidNamespace(
  containers: readonly ContainerFacts[],
  cgroupOf: (pid: number) => string | undefined
): boolean {
  const running = containers.filter(c => c.running)
  return (
    running.length > 0 &&
    running.every(c => c.pid > 0 && containersOfCgroup(cgroupOf(c.pid) ?? '').includes(c.id))
  )
}

/** Arguments of the per-process query teardown reads (with each process's name). */
export const QUERY_PROCESSES = [
  '--query-compute-apps=gpu_uuid,pid,process_name,used_memory',
  '--format=csv,noheader,nounits'
]
/** Arguments of the memory query that tells when a GPU is idle again. */
export const QUERY_MEMORY = [
  '--query-gpu=index,uuid,memory.used,memory.total',
  '--format=csv,noheader,nounits'
]

/** One compute process on a GPU. */
export interface GpuProcessLine {
  uuid: string
  pid: number
  name: string
  memory: number
}

const num = (text: string | undefined): number => {
  const n = Number(text?.trim())
  return Number.isFinite(n) ? n : 0
}

/** Parses QUERY_PROCESSES' lines; the name may hold commas, so the fields come from both ends. */
export function parseGpuProcesses(text: string): GpuProcessLine[] {
  return text.split('\n').flatMap(line => {
    const f = line.split(',').map(s => s.trim())
    if (f.length < 4 || !/^GPU-/i.test(f[0]) || !/^\d+$/.test(f[1])) return []
    return [{uuid: f[0], pid: Number(f[1]), name: f.slice(2, -1).join(','), memory: num(f.at(-1))}]
  })
}

/** One GPU's memory in use and in all, MiB. */
export interface GpuMemory {
  index: number
  uuid: string
  used: number
  total: number
}

/** Parses QUERY_MEMORY's lines. */
export function parseGpuMemory(text: string): GpuMemory[] {
  return text.split('\n').flatMap(line => {
    const f = line.split(',').map(s => s.trim())
    return f.length === 4 && /^\d+$/.test(f[0]) && /^GPU-/i.test(f[1])
      ? [{index: Number(f[0]), uuid: f[1], used: num(f[2]), total: num(f[3])}]
      : []
  })
}

/**
 * The most memory (MiB) an idle GPU shows: the driver keeps a little for itself (a few MiB on
 * data-center GPUs, more with a display or MIG), never as much as a job's context (hundreds of MiB).
 */
export function idleMemory(total: number): number {
  return Math.max(64, Math.ceil(total / 100))
}
