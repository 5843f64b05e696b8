/**
 * Reads what teardown judges (changes nothing): the GPUs and their compute processes (nvidia-smi),
 * Docker's containers and networks (`docker inspect`), and /proc (each GPU process's start, parent
 * chain and container; the runner processes on the host; the job's runner and its label).
 */
import {promises as fs, readFileSync} from 'node:fs'
import {HostError, tailLines} from '../../errors.js'
import type {CommandRunner} from '../../exec/runner.js'
import {runnerFolder} from '../../system/actions-runner.js'
import {runnerLabelOf} from '../../system/runner-label.js'
import {findNvidiaSmi} from '../../system/nvidia-smi.js'
import {processIdentity} from '../../system/process.js'
import {
  QUERY_MEMORY,
  QUERY_PROCESSES,
  containersOfCgroup,
  inHostPidNamespace,
  parseContainers,
  parseGpuMemory,
  parseGpuProcesses,
  parseNetworks,
  type ContainerFacts,
  type GpuMemory,
  type GpuProcessLine,
  type NetworkFacts
} from './objects.js'
import type {GpuProcess, TeardownFacts, TeardownJob} from './plan.js'

/** What a caller knows of the job to tear down. */
export interface TeardownRequest {
  /** Its worker process (pid, start in clock ticks after boot). */
  pid: number
  start: string
  /** The GPUs leased to it. */
  gpus: string[]
  /** Its worker has ended: its lease is being taken over by another job. */
  dead: boolean
  /**
   * The job's own post step: the runner removes its job and service containers itself, after
   * every post step (some of which may still use them).
   */
  beforeRunnerCleanup?: boolean
  /** GPU UUID → the live job that holds it, in words (other jobs only). */
  otherLeases: ReadonlyMap<string, string>
  /** The label on the action's own containers. */
  managedLabel: string
}

/** Runs nvidia-smi with these arguments; fails when it cannot. */
async function nvidiaSmi(runner: CommandRunner, args: string[]): Promise<string> {
  const smi = (await findNvidiaSmi()) ?? 'nvidia-smi'
  const r = await runner.run([smi, ...args], {allowFailure: true, timeoutSeconds: 30})
  if (r.exitCode !== 0) {
    throw new HostError(
      `nvidia-smi failed (exit ${r.exitCode}): ${tailLines(r.stderr || r.stdout, 3)}`
    )
  }
  return r.stdout
}

/** The GPUs' memory, and their compute processes (whose pid still runs). */
export async function readGpus(
  runner: CommandRunner
): Promise<{memory: GpuMemory[]; processes: GpuProcessLine[]}> {
  const [memory, processes] = await Promise.all([
    nvidiaSmi(runner, QUERY_MEMORY),
    nvidiaSmi(runner, QUERY_PROCESSES)
  ])
  return {memory: parseGpuMemory(memory), processes: parseGpuProcesses(processes)}
}

/** `docker inspect` of every object `ls` lists (running or stopped), as JSON text. */
async function inspectAll(runner: CommandRunner, ls: string[], inspect: string[]): Promise<string> {
  const ids = await runner.run(ls, {root: true, allowFailure: true, timeoutSeconds: 60})
  if (ids.exitCode !== 0) {
    throw new HostError(`${ls.join(' ')} failed: ${tailLines(ids.stderr, 3)}`)
  }
  const list = ids.stdout.split('\n').filter(Boolean)
  if (list.length === 0) return '[]'
  // An object removed between the two commands makes inspect fail for it alone: keep the rest.
  const r = await runner.run([...inspect, ...list], {
    root: true,
    allowFailure: true,
    timeoutSeconds: 60
  })
  return r.stdout.trim() || '[]'
}

/** Every container (running or stopped) and user-defined network; none where Docker is not there. */
export async function readDocker(
  runner: CommandRunner
): Promise<{containers: ContainerFacts[]; networks: NetworkFacts[]; docker: boolean}> {
  const has = await runner.run(['docker', 'version', '--format', '{{.Server.Version}}'], {
    root: true,
    allowFailure: true,
    timeoutSeconds: 30
  })
  if (has.exitCode !== 0) return {containers: [], networks: [], docker: false}
  const [containers, networks] = await Promise.all([
    inspectAll(
      runner,
      ['docker', 'ps', '--all', '--quiet', '--no-trunc'],
      ['docker', 'inspect', '--type', 'container']
    ),
    inspectAll(
      runner,
      ['docker', 'network', 'ls', '--quiet', '--no-trunc'],
      ['docker', 'network', 'inspect']
    )
  ])
  return {containers: parseContainers(containers), networks: parseNetworks(networks), docker: true}
}

/** Does `pid` descend from `ancestor` (same start time), by the parents /proc names? */
function descendsFrom(pid: number, ancestor: {pid: number; start: string}): boolean {
  let p = processIdentity(pid)
  for (let hops = 0; p && p.pid > 1 && hops < 64; hops++) {
    if (p.pid === ancestor.pid) return p.start === ancestor.start
    p = processIdentity(p.ppid)
  }
  return false
}

/** /proc/<pid>/cgroup (readable by every user); undefined once the process is gone. */
function readCgroup(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cgroup`, 'utf8')
  } catch {
    return undefined
  }
}

/**
 * The compute processes still running, one per pid, with their start, origin and container (one
 * of `containers`: the IDs this host's Docker lists).
 */
export function gpuProcesses(
  lines: GpuProcessLine[],
  job: {pid: number; start: string},
  containers: ReadonlySet<string>
): GpuProcess[] {
  const byPid = new Map<number, GpuProcessLine[]>()
  for (const l of lines) byPid.set(l.pid, [...(byPid.get(l.pid) ?? []), l])
  return [...byPid].flatMap(([pid, ls]) => {
    const me = processIdentity(pid)
    if (!me) return []
    const cgroup = readCgroup(pid)
    if (cgroup === undefined) return [] // ended while read
    return [
      {
        pid,
        start: me.start,
        name: ls[0].name || me.name,
        uuids: ls.map(l => l.uuid),
        container: containersOfCgroup(cgroup)
          .reverse()
          .find(id => containers.has(id)),
        fromWorker: descendsFrom(pid, job)
      }
    ]
  })
}

/** Clock ticks per second of /proc's times: USER_HZ, 100 on every Linux ABI runners use. */
const USER_HZ = 100

/** When a process that started `start` ticks after boot started, in ms since the epoch. */
export function startedAt(start: string): number {
  const btime = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]
  return (Number(btime) + Number(start) / USER_HZ) * 1000
}

/** The job's runner's container label, when its folder can be found. */
async function runnerLabel(workerPid: number): Promise<string | undefined> {
  const folder = await runnerFolder(workerPid)
  return folder === undefined ? undefined : runnerLabelOf(folder)
}

/** The runner processes on this host (Runner.Listener, Runner.Worker), by pid. */
async function runnerProcesses(): Promise<{listeners: number[]; workers: number[]}> {
  const out = {listeners: [] as number[], workers: [] as number[]}
  for (const name of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const p = processIdentity(Number(name))
    if (p?.name === 'Runner.Listener') out.listeners.push(p.pid)
    if (p?.name === 'Runner.Worker') out.workers.push(p.pid)
  }
  return out
}

/**
 * No other job can have run since this one began: one runner on the host (a runner runs one job at
 * a time), it started this job's worker, and no other worker runs.
 */
async function aloneOnHost(workerPid: number): Promise<boolean> {
  const {listeners, workers} = await runnerProcesses()
  const parent = processIdentity(workerPid)?.ppid
  return listeners.length === 1 && listeners[0] === parent && workers.every(w => w === workerPid)
}

/** Reads everything teardown judges for this job. */
export async function detectTeardown(
  runner: CommandRunner,
  req: TeardownRequest
): Promise<{facts: TeardownFacts; docker: boolean}> {
  const [gpus, docker] = await Promise.all([
    req.gpus.length > 0 ? readGpus(runner) : Promise.resolve({memory: [], processes: []}),
    readDocker(runner)
  ])
  const hostPid = inHostPidNamespace(docker.containers, readCgroup)
  const job: TeardownJob = {
    pid: req.pid,
    start: req.start,
    since: startedAt(req.start),
    gpus: req.gpus,
    dead: req.dead,
    beforeRunnerCleanup: req.beforeRunnerCleanup === true,
    // A dead job's runner may already run another job: neither its label nor its window is its own.
    runnerLabel: req.dead ? undefined : await runnerLabel(req.pid),
    alone: req.dead ? false : await aloneOnHost(req.pid),
    hostPid
  }
  return {
    facts: {
      job,
      gpus: gpus.memory.map(m => ({index: m.index, uuid: m.uuid})),
      otherLeases: req.otherLeases,
      containers: docker.containers,
      networks: docker.networks,
      processes: gpuProcesses(gpus.processes, req, new Set(docker.containers.map(c => c.id))),
      managedLabel: req.managedLabel
    },
    docker: docker.docker
  }
}
