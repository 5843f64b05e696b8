/** Reads the GPUs (nvidia-smi's query interface), the lease files of the lock folder and the job's worker process (/proc). */
import {promises as fs} from 'node:fs'
import * as path from 'node:path'
import {HostError, errorMessage, tailLines} from '../../errors.js'
import type {CommandRunner} from '../../exec/runner.js'
import {readFileMaybe} from '../../system/files.js'
import {driverGpuAddresses, findNvidiaSmi} from '../../system/nvidia-smi.js'
import {LOCK_DIR} from '../../system/lock.js'
import {processIdentity, sameProcessAlive, type ProcessIdentity} from '../../system/process.js'
import type {PhaseContext} from '../pipeline.js'
import {QUERY_APPS, QUERY_GPUS, gpuDevices, type GpuDevice} from './gpu-query.js'
import type {GpuInputs} from './inputs.js'
import {jobDescription, parseLease, uuidOfLeaseFile, type JobIdentity} from './lease.js'
import type {GpuFacts, LeaseView} from './plan.js'
import {nvidiaCdiDevices} from './cdi.js'
import {parseMismatch} from './health-driver.js'

/**
 * The GPUs and their compute processes (runs nvidia-smi's two queries); fails without a driver.
 * `driverGpus` (the driver's GPUs by PCI address, in index order) is asked only when a query fails.
 */
export async function queryGpus(
  runner: CommandRunner,
  driverGpus: () => Promise<string[] | undefined> = driverGpuAddresses
): Promise<GpuDevice[]> {
  // Where the driver put it (WSL2: /usr/lib/wsl/lib, not on PATH); else by name, to say it failed.
  const nvidiaSmi = (await findNvidiaSmi()) ?? 'nvidia-smi'
  const ask = (args: string[]) =>
    runner.run([nvidiaSmi, ...args], {allowFailure: true, timeoutSeconds: 30}).catch(e => {
      throw new HostError(`gpus is set, but nvidia-smi cannot be run: ${errorMessage(e)}`)
    })
  const both = (only: string[]) =>
    Promise.all([ask([...QUERY_GPUS, ...only]), ask([...QUERY_APPS, ...only])])
  const [gpus, apps] = await both([])
  const failed = [gpus, apps].find(r => r.exitCode !== 0)
  if (failed === undefined) return gpuDevices(gpus.stdout, apps.stdout)
  // One GPU NVML cannot get a handle for (fallen off the bus) makes a query of all abort: each
  // GPU alone, so the others can still be leased (the health gate names the lost one). Not for a
  // driver/library mismatch, which every query shares.
  const buses = parseMismatch(`${failed.stdout}\n${failed.stderr}`) ? undefined : await driverGpus()
  if (buses !== undefined && buses.length > 1) {
    const each = await Promise.all(buses.map((_, i) => both(['-i', String(i)])))
    const ok = each.filter(([g, a]) => g.exitCode === 0 && a.exitCode === 0)
    if (ok.length > 0) {
      return gpuDevices(
        ok.map(([g]) => g.stdout).join('\n'),
        ok.map(([, a]) => a.stdout).join('\n')
      )
    }
  }
  throw new HostError(
    `gpus is set, but nvidia-smi failed (exit ${failed.exitCode}): ${tailLines(failed.stderr || failed.stdout, 3)}`
  )
}

/** The lease files in the host lock folder, each with whether its job's worker still runs. */
export async function readLeases(runner: CommandRunner): Promise<Map<string, LeaseView>> {
  const names = await fs.readdir(LOCK_DIR).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return []
    throw e
  })
  const leases = new Map<string, LeaseView>()
  for (const name of names) {
    const uuid = uuidOfLeaseFile(name)
    if (uuid === undefined) continue
    const text = await readFileMaybe(runner, path.join(LOCK_DIR, name))
    if (text === undefined) continue // released while the folder was read
    // A damaged file names no live job: it is taken over like a lease whose job has ended.
    const lease = parseLease(text) ?? {
      uuid,
      index: -1,
      pid: 0,
      start: '',
      job: 'unknown',
      since: ''
    }
    leases.set(uuid, {lease, text, alive: sameProcessAlive(lease.pid, lease.start)})
  }
  return leases
}

/**
 * The job this run belongs to: the parent of the action's node process, which the runner's
 * Runner.Worker is, alive for the whole job (the post step is its child too); for a job hook, the
 * Runner.Worker above the hook's shell. Throws when there is none to hold a lease (the action
 * started by init, or the parent already gone).
 */
export function jobIdentity(env: NodeJS.ProcessEnv = process.env): JobIdentity {
  const ppid = process.ppid
  const parent = ppid > 1 ? processIdentity(ppid) : undefined
  if (parent === undefined) {
    throw new HostError(
      `gpus: a GPU lease belongs to the job's worker process, the parent of the action's node process, but that parent (pid ${ppid}) is ${ppid > 1 ? 'gone' : 'init'}: run the action as a step of a job.`
    )
  }
  // A job hook runs the action under its script's shell: the job is the worker above that shell.
  let worker = parent
  for (let p: ProcessIdentity | undefined = parent, hops = 0; p && hops < 8; hops++) {
    if (p.name === 'Runner.Worker') {
      worker = p
      break
    }
    p = p.ppid > 1 ? processIdentity(p.ppid) : undefined
  }
  return {pid: worker.pid, start: worker.start, process: worker.name, job: jobDescription(env)}
}

/** Reads the GPUs, their leases and this job's worker process when gpus is set; changes nothing. */
export async function detectGpus(ctx: PhaseContext<GpuInputs>): Promise<GpuFacts> {
  if (ctx.inputs.gpus.kind === 'none') return {devices: [], leases: new Map()}
  const job = jobIdentity()
  const [devices, leases, cdi] = await Promise.all([
    queryGpus(ctx.runner),
    readLeases(ctx.runner),
    nvidiaCdiDevices(ctx.runner, ctx.host.dockerSocket)
  ])
  // The health gate ran first (gpu-health: fail): its unhealthy GPUs are never leased.
  const health = ctx.outputs.gpuHealth
  const unhealthy = new Map(
    Object.entries(health?.enforced ? health.gpus : {})
      .filter(([, h]) => !h.healthy)
      .map(([uuid, h]) => [uuid, h.problems])
  )
  return {devices, leases, job, unhealthy, cdi}
}
