/**
 * The teardown plan (pure): which containers, networks and GPU processes a job left, and which
 * others it must keep and why. Something is removed only when it provably belongs to the job: the
 * runner's own label on the job's containers, the job's leased GPUs (and only those) in a
 * container's device requests or NVIDIA_VISIBLE_DEVICES, a process started by the job's worker or
 * on its GPUs after the job began, or, on a host where no other job can have run meanwhile, the job's
 * time window; the last two only where the job sees the host's processes. A compose project's
 * containers go together or not at all. Whatever touches the job's GPUs or was made during it and
 * is not certain is named and kept.
 */
import type {TeardownItem} from '../../outputs.js'
import type {ContainerFacts, NetworkFacts} from './objects.js'

/** A GPU of the host. */
export interface HostGpu {
  index: number
  uuid: string
}

/** A compute process on a GPU, with what /proc says of it. */
export interface GpuProcess {
  pid: number
  /** Its start (clock ticks after boot), to tell it from a later process with its pid. */
  start: string
  name: string
  /** The GPUs it has a context on. */
  uuids: string[]
  /** The container it runs in (full ID), if any. */
  container?: string
  /** Started by the job's worker (it descends from it). */
  fromWorker: boolean
}

/** The job whose leftovers are removed, and what else the host holds. */
export interface TeardownJob {
  /** Its worker process (pid, start in clock ticks after boot). */
  pid: number
  start: string
  /** When the worker started, ms since the epoch: the job's window opens there. */
  since: number
  /** The GPUs leased to it (UUIDs). */
  gpus: string[]
  /** The label key its runner puts on its job and service containers, when it could be read. */
  runnerLabel?: string
  /**
   * No other job can have run on this host since `since` (one runner, and it ran this job), as
   * far as /proc shows: proof only with hostPid.
   */
  alone: boolean
  /**
   * The job runs in the host's pid namespace (inHostPidNamespace). Where it does not, runners in
   * other containers are out of its sight and may share its label (one install path, one label):
   * neither the label nor the time window is proof.
   */
  hostPid: boolean
  /** The job has ended (its lease is being taken over): its worker is gone. */
  dead: boolean
  /** The job's post step: the runner removes its labelled containers itself, after it. */
  beforeRunnerCleanup?: boolean
}

/** What teardown read. */
export interface TeardownFacts {
  job: TeardownJob
  gpus: HostGpu[]
  /** GPU UUID → the live job that holds its lease, in words (other jobs only). */
  otherLeases: ReadonlyMap<string, string>
  containers: ContainerFacts[]
  networks: NetworkFacts[]
  processes: GpuProcess[]
  /** Labels that mark the action's own containers (its registry and caches). */
  managedLabel: string
}

/** What to do: the containers, processes and networks to remove, and the result to report. */
export interface TeardownPlan {
  containers: ContainerFacts[]
  processes: GpuProcess[]
  networks: NetworkFacts[]
  kept: TeardownItem[]
  /** Why each planned removal is the job's, by kind and id. */
  why: Map<string, string>
}

type Verdict = {remove: true; why: string} | {remove: false; why: string} | undefined

/** `GPU 1` for a UUID (or an index, as a container may name it). */
function gpuName(id: string, gpus: HostGpu[]): string {
  const g = gpus.find(x => x.uuid.toLowerCase() === id.toLowerCase() || String(x.index) === id)
  return g ? `GPU ${g.index}` : `GPU ${id}`
}

/** The UUIDs a container names, indexes resolved (unknown ids stay as written). */
function uuidsOf(ids: string[], gpus: HostGpu[]): string[] {
  return ids.map(id => gpus.find(g => String(g.index) === id)?.uuid ?? id)
}

const lower = (xs: readonly string[]): Set<string> => new Set(xs.map(x => x.toLowerCase()))

/** Whose GPUs those are, in words: leased to another job, or to none. */
function foreignGpus(uuids: string[], f: TeardownFacts): string {
  return uuids
    .map(u => {
      const holder = [...f.otherLeases].find(([k]) => k.toLowerCase() === u.toLowerCase())?.[1]
      return `${gpuName(u, f.gpus)} (${holder ? `leased to ${holder}` : 'not leased to this job'})`
    })
    .join(', ')
}

/** No other job can have run meanwhile, as far as this job can see the host's processes. */
const alone = (f: TeardownFacts): boolean => f.job.alone && f.job.hostPid

/** The compose label: the project a container belongs to (`docker compose up`). */
export const COMPOSE_PROJECT = 'com.docker.compose.project'

/** The job's verdict on a container that touches its GPUs. */
function byGpus(c: ContainerFacts, f: TeardownFacts, inWindow: boolean): Verdict {
  const mine = lower(f.job.gpus)
  const uuids = uuidsOf(c.gpus.ids, f.gpus)
  const touches = c.gpus.all || uuids.some(u => mine.has(u.toLowerCase()))
  if (!touches) return undefined
  const names = [...mine].map(u => gpuName(u, f.gpus)).join(', ')
  if (c.gpus.all) {
    return inWindow && alone(f)
      ? {
          remove: true,
          why: `can use every GPU, and was made during this job on a host where no other job ran`
        }
      : {
          remove: false,
          why: "can use every GPU (--gpus all or NVIDIA_VISIBLE_DEVICES=all), so it is not only this job's"
        }
  }
  const others = uuids.filter(u => !mine.has(u.toLowerCase()))
  if (others.length > 0) return {remove: false, why: `also uses ${foreignGpus(others, f)}`}
  if (!inWindow) return {remove: false, why: `uses ${names}, but was made before this job began`}
  return {remove: true, why: `uses only ${names}, leased to this job, and was made during it`}
}

/** The verdict on one container: removed, kept with a reason, or not the job's concern at all. */
export function judgeContainer(c: ContainerFacts, f: TeardownFacts): Verdict {
  const inWindow = c.created >= f.job.since
  if (c.labels[f.managedLabel] !== undefined) {
    return inWindow || byGpus(c, f, inWindow)
      ? {remove: false, why: "the action's own registry or cache (the cleanup input decides)"}
      : undefined
  }
  const runner = f.job.runnerLabel
  const labelled = runner !== undefined && c.labels[runner] !== undefined
  if (labelled && f.job.hostPid) {
    if (!inWindow) {
      return {
        remove: false,
        why: 'left by an earlier job of this runner (the runner removes it itself)'
      }
    }
    return f.job.beforeRunnerCleanup
      ? {
          remove: false,
          why: "the runner's job or service container: the runner removes it after the job's post steps, which may still use it"
        }
      : {remove: true, why: "the runner's job or service container, made during this job"}
  }
  const gpus = byGpus(c, f, inWindow)
  if (gpus || !inWindow) return gpus
  if (c.restart !== 'no') {
    return {
      remove: false,
      why: `made during this job, but restarts with Docker (--restart ${c.restart}): a service`
    }
  }
  if (!f.job.hostPid) {
    return {
      remove: false,
      why: `made during this job${labelled ? " with this runner's label" : ''}, but this job does not see the host's processes (another pid namespace): runners out of its sight may share its label and window`
    }
  }
  return alone(f)
    ? {remove: true, why: 'made during this job, on a host where no other job ran meanwhile'}
    : {
        remove: false,
        why: "made during this job, but other jobs may run on this host: not certain it is this job's"
      }
}

/** The verdict on one GPU process outside any container. */
function judgeProcess(p: GpuProcess, f: TeardownFacts): Verdict {
  const mine = lower(f.job.gpus)
  if (!p.uuids.some(u => mine.has(u.toLowerCase()))) return undefined
  const others = p.uuids.filter(u => !mine.has(u.toLowerCase()))
  if (others.length > 0) return {remove: false, why: `also runs on ${foreignGpus(others, f)}`}
  if (p.fromWorker) return {remove: true, why: "started by this job's worker"}
  // Clock ticks after boot, as the lease holds the worker's: a later start is a later process.
  if (BigInt(p.start) >= BigInt(f.job.start)) {
    return {remove: true, why: "on this job's GPUs only, started during the job"}
  }
  return {remove: false, why: "on this job's GPUs, but started before the job"}
}

const kindKey = (kind: TeardownItem['kind'], id: string): string => `${kind}:${id}`

/**
 * What to remove and what to keep (pure). A process inside a container goes (or stays) with its
 * container; a network goes when it was made during the job and only the job's containers use it
 * (or the runner's label names it).
 */
export function planTeardown(f: TeardownFacts): TeardownPlan {
  const plan: TeardownPlan = {containers: [], processes: [], networks: [], kept: [], why: new Map()}
  const take = (kind: TeardownItem['kind'], id: string, v: Verdict): boolean => {
    if (v?.remove) plan.why.set(kindKey(kind, id), v.why)
    else if (v) plan.kept.push({kind, id, why: v.why})
    return v?.remove === true
  }
  const verdicts = f.containers.map(c => ({c, v: judgeContainer(c, f)}))
  const project = (c: ContainerFacts): string | undefined => c.labels[COMPOSE_PROJECT]
  for (const {c, v} of verdicts) {
    const p = project(c)
    // A compose project goes whole, each of its containers on its own proof, or stays whole.
    const rest = verdicts.filter(x => p !== undefined && project(x.c) === p && !x.v?.remove)
    const verdict: Verdict =
      v?.remove && rest.length > 0
        ? {
            remove: false,
            why: `of compose project ${p}, whose ${rest.map(x => x.c.name).join(', ')} ${rest.length > 1 ? 'are' : 'is'} not this job's`
          }
        : v
    if (take('container', c.name, verdict)) plan.containers.push(c)
  }
  const gone = new Set(plan.containers.map(c => c.id))
  for (const p of f.processes) {
    const id = `${p.pid} (${p.name})`
    if (p.container !== undefined) {
      const c = f.containers.find(x => x.id === p.container)
      if (c && !gone.has(c.id) && judgeProcess(p, f)) {
        plan.kept.push({kind: 'process', id, why: `runs in container ${c.name}, which is kept`})
      }
      continue
    }
    if (p.pid === f.job.pid) continue
    if (take('process', id, judgeProcess(p, f))) plan.processes.push(p)
  }
  for (const n of f.networks)
    if (take('network', n.name, judgeNetwork(n, f, gone))) plan.networks.push(n)
  return plan
}

/** The verdict on a network: the job's when its runner labelled it, or only the job's containers use it. */
function judgeNetwork(n: NetworkFacts, f: TeardownFacts, gone: ReadonlySet<string>): Verdict {
  if (n.created < f.job.since || n.labels[f.managedLabel] !== undefined) return undefined
  const runner = f.job.runnerLabel
  if (runner !== undefined && n.labels[runner] !== undefined && f.job.hostPid) {
    return {remove: true, why: "the runner's job network, made during this job"}
  }
  const users = f.containers.filter(c => c.networks.includes(n.id))
  if (users.length > 0 && users.every(c => gone.has(c.id))) {
    return {remove: true, why: "made during this job, used only by this job's containers"}
  }
  if (users.length === 0 && alone(f)) {
    return {remove: true, why: 'made during this job, unused, on a host where no other job ran'}
  }
  const others = users.filter(c => !gone.has(c.id)).map(c => c.name)
  return {
    remove: false,
    why:
      others.length > 0
        ? `made during this job, but also used by ${others.join(', ')}`
        : "made during this job and unused, but other jobs may run on this host: not certain it is this job's"
  }
}

/** The removals as the output's items, in the plan's order. */
export function removedItems(plan: TeardownPlan): TeardownItem[] {
  const item = (kind: TeardownItem['kind'], id: string): TeardownItem => ({
    kind,
    id,
    why: plan.why.get(kindKey(kind, id)) ?? ''
  })
  return [
    ...plan.containers.map(c => item('container', c.name)),
    ...plan.processes.map(p => item('process', `${p.pid} (${p.name})`)),
    ...plan.networks.map(n => item('network', n.name))
  ]
}
