/**
 * Removes what a job left (thin effects over the plan): stops its containers (TERM, then KILL
 * after a grace) and removes them with their anonymous volumes, ends its processes on its GPUs the
 * same way, removes its networks, then waits until each of its GPUs shows no process and an idle
 * GPU's memory. Only GPUs that are idle again may be handed on.
 */
import * as core from '@actions/core'
import {errorMessage, tailLines} from '../../errors.js'
import type {CommandRunner} from '../../exec/runner.js'
import {processIdentity} from '../../system/process.js'
import {detectTeardown, readGpus, type TeardownRequest} from './detect.js'
import {teardownLines} from './facts.js'
import {idleMemory} from './objects.js'
import type {TeardownItem, TeardownResult} from '../../outputs.js'
import {planTeardown, removedItems, type GpuProcess} from './plan.js'

/** Seconds a container or process gets between TERM and KILL. */
export const GRACE_S = 10
/** Seconds to wait for the driver to free a GPU's memory after its processes ended. */
export const SETTLE_S = 30
const POLL_MS = 250

/** What teardown did, and which of the job's GPUs are idle again (only those may be handed on). */
export interface TeardownOutcome {
  result: TeardownResult
  idle: string[]
  /** The job's GPUs that are not idle, each with what still holds it. */
  busy: {uuid: string; why: string}[]
}

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))

/**
 * `docker rm` failed only because the container is gone, or going: none by that ID, or (a `--rm`
 * container that stopped) Docker already removing it.
 */
export function goneAlready(stderr: string): boolean {
  return /No such container|removal of container \S+ is already in progress/i.test(stderr)
}

/** Stops (TERM, then KILL after GRACE_S) and removes the containers with their anonymous volumes. */
async function removeContainers(
  runner: CommandRunner,
  ids: string[]
): Promise<Map<string, string>> {
  const failed = new Map<string, string>()
  if (ids.length === 0) return failed
  await runner.run(['docker', 'stop', '--time', String(GRACE_S), ...ids], {
    root: true,
    allowFailure: true,
    timeoutSeconds: GRACE_S + 60
  })
  for (const id of ids) {
    const r = await runner.run(['docker', 'rm', '--force', '--volumes', id], {
      root: true,
      allowFailure: true,
      timeoutSeconds: 60
    })
    if (r.exitCode !== 0 && !goneAlready(r.stderr)) failed.set(id, tailLines(r.stderr, 1))
  }
  return failed
}

/** The processes still running as the same process (pid and start). */
const alive = (ps: GpuProcess[]) => ps.filter(p => processIdentity(p.pid)?.start === p.start)

/** Ends the processes: TERM, then KILL what still runs after GRACE_S; returns what outlived KILL. */
export async function endProcesses(runner: CommandRunner, ps: GpuProcess[]): Promise<GpuProcess[]> {
  const signal = async (sig: string, list: GpuProcess[]) => {
    for (const p of list) {
      // Checked just before each signal (each kill may take a while as root): a pid that ended
      // meanwhile and was reused by another process is not signalled.
      if (alive([p]).length === 0) continue
      await runner.run(['kill', `-${sig}`, String(p.pid)], {root: true, allowFailure: true})
    }
  }
  const waitGone = async (list: GpuProcess[], seconds: number) => {
    const until = Date.now() + seconds * 1000
    while (alive(list).length > 0 && Date.now() < until) await sleep(POLL_MS)
    return alive(list)
  }
  await signal('TERM', ps)
  const stubborn = await waitGone(ps, GRACE_S)
  if (stubborn.length === 0) return []
  core.info(
    `Sending KILL to ${stubborn.map(p => p.pid).join(', ')}: still running ${GRACE_S} s after TERM.`
  )
  await signal('KILL', stubborn)
  return waitGone(stubborn, 5)
}

/** Waits up to SETTLE_S until each GPU has no process and an idle GPU's memory; says what holds the others. */
async function settle(
  runner: CommandRunner,
  uuids: string[]
): Promise<Pick<TeardownOutcome, 'idle' | 'busy'>> {
  const until = Date.now() + SETTLE_S * 1000
  for (;;) {
    const {memory, processes} = await readGpus(runner)
    const busy = uuids.flatMap(u => {
      const m = memory.find(x => x.uuid.toLowerCase() === u.toLowerCase())
      const ps = processes.filter(p => p.uuid.toLowerCase() === u.toLowerCase())
      if (ps.length > 0)
        return [
          {
            uuid: u,
            why: `processes ${ps.map(p => `${p.pid} (${p.name})`).join(', ')} still run on it`
          }
        ]
      if (m && m.used > idleMemory(m.total))
        return [{uuid: u, why: `${m.used} MiB of its memory is still in use`}]
      return []
    })
    if (busy.length === 0 || Date.now() >= until) {
      return {idle: uuids.filter(u => !busy.some(b => b.uuid === u)), busy}
    }
    await sleep(POLL_MS * 2)
  }
}

/**
 * Tears down what the job left: reads, plans (what is provably the job's), removes, and waits
 * for the job's GPUs to be idle. Logs one line per kind; a removal that fails is kept, with why.
 */
export async function tearDown(
  runner: CommandRunner,
  req: TeardownRequest
): Promise<TeardownOutcome> {
  const {facts, docker} = await detectTeardown(runner, req)
  const plan = planTeardown(facts)
  const kept: TeardownItem[] = [...plan.kept]
  // Side by side: each may wait its grace for what ignores TERM.
  const [failed, outlived] = await Promise.all([
    removeContainers(
      runner,
      plan.containers.map(c => c.id)
    ),
    endProcesses(runner, plan.processes)
  ])
  for (const n of plan.networks) {
    const r = await runner.run(['docker', 'network', 'rm', n.id], {root: true, allowFailure: true})
    if (r.exitCode !== 0) failed.set(n.id, tailLines(r.stderr, 1))
  }
  const notRemoved = (i: TeardownItem, why: string) =>
    kept.push({...i, why: `could not be removed: ${why}`})
  const removed = removedItems(plan).filter(i => {
    const c = plan.containers.find(x => x.name === i.id) ?? plan.networks.find(x => x.name === i.id)
    const error = c && failed.get(c.id)
    const stuck = i.kind === 'process' && outlived.some(p => `${p.pid} (${p.name})` === i.id)
    if (error) notRemoved(i, error)
    else if (stuck) notRemoved(i, 'still running after KILL')
    return !error && !stuck
  })
  const result = {removed, kept}
  const gpus = req.gpus.length > 0 ? await settle(runner, req.gpus) : {idle: [], busy: []}
  const lines = teardownLines(result)
  core.info(
    lines.length > 0 ? `Teardown: ${lines.join('. ')}` : 'Teardown: this job left nothing behind.'
  )
  if (!docker) core.info('Teardown: Docker does not answer here; no container or network was read.')
  return {result, ...gpus}
}

/** tearDown, never throwing: a failure to read is reported, and then no GPU counts as idle. */
export async function tearDownOrWarn(
  runner: CommandRunner,
  req: TeardownRequest
): Promise<TeardownOutcome> {
  try {
    return await tearDown(runner, req)
  } catch (e) {
    core.warning(`Teardown failed: ${errorMessage(e)}`)
    return {
      result: {removed: [], kept: []},
      idle: [],
      busy: req.gpus.map(uuid => ({uuid, why: `teardown failed: ${errorMessage(e)}`}))
    }
  }
}
