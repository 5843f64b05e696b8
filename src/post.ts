/** The post step: releases the job's GPU leases, removes its DOCKER_CONFIG and, with cleanup, the registry containers it started; warns, never fails. */
import * as core from '@actions/core'
import {errorMessage} from './errors.js'
import {ExecRunner, type CommandRunner} from './exec/runner.js'
import {teardownJson} from './outputs.js'
import {jobIdentity, readLeases} from './phases/gpus/detect.js'
import {heldBy, holderText} from './phases/gpus/lease.js'
import {releaseLeases} from './phases/gpus/release.js'
import {privateTempDir} from './host.js'
import {LABEL_MANAGED} from './phases/registry/spec.js'
import {forgetUse, jobWorker, otherUsers} from './phases/registry/users.js'
import {teardownPhase} from './phases/teardown/phase.js'
import {
  readPostState,
  runnerState,
  type PostState,
  type SavedLease,
  type StateStore
} from './state.js'
import {teardownBlock} from './summary/render.js'
import {writeSummary} from './summary/write.js'
import {LOCK_DIR, acquireHostLock, type HostLock} from './system/lock.js'
import {processIdentity} from './system/process.js'

/** What the post step runs on; tests give a recording runner, a state map, a lock and a folder. */
export interface PostDeps {
  runner: CommandRunner
  state: StateStore
  /** Takes the host lock (cleanup: registry decides and removes under it). */
  lockHost: (runner: CommandRunner) => Promise<HostLock>
  /** Where jobs record the registry containers they use (the host lock folder). */
  usersDir: string
}

const realDeps = (): PostDeps => ({
  runner: new ExecRunner(),
  state: runnerState,
  lockHost: async runner => acquireHostLock(runner, await privateTempDir(), core.info),
  usersDir: LOCK_DIR
})

/**
 * Removes the registry containers this job started, under the host lock, except one that another
 * live job uses (it found the container running and recorded so): that one is kept, and the log
 * and the summary say which job uses it.
 */
async function removeRegistries(deps: PostDeps, names: readonly string[]): Promise<void> {
  const {runner} = deps
  const lock = await deps.lockHost(runner)
  try {
    const kept: string[] = []
    for (const name of names) {
      const users = await otherUsers(runner, name, jobWorker(), deps.usersDir)
      if (users.length > 0) {
        kept.push(`${name}: in use by ${users.join('; ')}`)
        core.info(
          `cleanup: kept ${name}, which this job started: another job uses it (${users.join('; ')}).`
        )
        continue
      }
      await runner.run(['docker', 'rm', '--force', name], {root: true})
      core.info(`cleanup: removed ${name}, which this job started (its data stays on the host).`)
    }
    if (kept.length > 0) {
      await core.summary
        .addRaw(`cleanup: kept the registry containers other jobs use: ${kept.join('; ')}.\n`)
        .write()
    }
  } finally {
    await lock.release()
  }
}

/**
 * Tears down what the job of `worker` left, then releases those of `own` (leases it holds) whose
 * GPUs are idle again. A GPU something still holds keeps its lease: once the worker ends, the next
 * job that finds the lease tears down again before using it.
 */
async function tearDownAndRelease(
  runner: CommandRunner,
  worker: {pid: number; start: string},
  own: readonly SavedLease[],
  beforeRunnerCleanup: boolean
): Promise<void> {
  // The whole job's GPUs: another step of the job may have leased more (its post step releases those).
  const leases = [...(await readLeases(runner)).values()].filter(v => v.alive)
  const jobs = leases.filter(v => heldBy(v.lease, worker)).map(v => v.lease.uuid)
  const otherLeases = new Map(
    leases.filter(v => !heldBy(v.lease, worker)).map(v => [v.lease.uuid, holderText(v.lease)])
  )
  const out = await teardownPhase.run(runner, {
    pid: worker.pid,
    start: worker.start,
    gpus: [...new Set([...own.map(l => l.uuid), ...jobs])],
    dead: false,
    beforeRunnerCleanup,
    otherLeases,
    managedLabel: LABEL_MANAGED
  })
  core.setOutput('teardown', teardownJson(out.result))
  await writeSummary(
    `${teardownBlock(out.result, 'docker-gpu-setup: teardown').join('\n').trim()}\n`
  )
  for (const b of out.busy) {
    const l = own.find(x => x.uuid === b.uuid)
    core.warning(
      `GPU ${l?.index ?? '?'} (${b.uuid}) stays leased: ${b.why}. The next job that finds its lease ended tears down again and takes it only once it is idle.`
    )
  }
  await releaseLeases(
    runner,
    own.filter(l => out.idle.includes(l.uuid))
  )
}

/** The job's worker: the one its leases name, else the parent of this step. */
function workerOf(saved: PostState): {pid: number; start: string} | undefined {
  return saved.gpuLeases[0] ?? processIdentity(process.ppid)
}

/**
 * The runner's job-completed hook (runner-hooks: install): tears down what the job left and
 * releases every lease its worker (the Runner.Worker above the hook's shell) holds. Like the post
 * step it warns and never fails: the job's result is already decided.
 */
export async function jobCompletedHook(
  config: {teardown: boolean},
  runner: CommandRunner = new ExecRunner()
): Promise<void> {
  try {
    const worker = jobIdentity()
    const own = [...(await readLeases(runner)).values()]
      .filter(v => heldBy(v.lease, worker))
      .map(v => ({
        uuid: v.lease.uuid,
        index: v.lease.index,
        pid: v.lease.pid,
        start: v.lease.start
      }))
    if (config.teardown) await tearDownAndRelease(runner, worker, own, false)
    else await releaseLeases(runner, own)
  } catch (e) {
    core.warning(`The job-completed hook failed: ${errorMessage(e)}`)
  }
}

/**
 * The post step: releases the GPU leases its main step took, removes the job's DOCKER_CONFIG (the
 * login in it) whenever the main step made one, and with cleanup: registry or all (as the main step
 * validated it), the registry containers this job started and no other live job uses (never their
 * data), under the host lock. It warns, never fails: a cleanup problem must not turn a green job
 * red.
 */
export async function post(overrides: Partial<PostDeps> = {}): Promise<void> {
  const deps = {...realDeps(), ...overrides}
  const {runner, state} = deps
  try {
    const saved = readPostState(state)
    // First, and whatever cleanup says: a waiting job gets the GPUs as soon as this one is done
    // (and, with teardown, once nothing this job left holds them).
    const worker = workerOf(saved)
    await (
      saved.teardown && worker
        ? tearDownAndRelease(runner, worker, saved.gpuLeases, true)
        : releaseLeases(runner, saved.gpuLeases)
    ).catch((e: unknown) => core.warning(`Releasing the GPU leases failed: ${errorMessage(e)}`))
    // This job uses no registry container any more: another job's cleanup may remove them.
    await forgetUse(runner, jobWorker(), deps.usersDir)
    if (saved.dockerConfig) {
      await runner.run(['rm', '-rf', '--', saved.dockerConfig], {root: true})
      core.info(`Removed this job's DOCKER_CONFIG (${saved.dockerConfig}) and the login in it.`)
    }
    if (saved.cleanup === 'none') {
      core.info('cleanup: none; leaving the host as configured.')
      return
    }
    if (saved.registryContainers.length === 0) {
      core.info(`cleanup: ${saved.cleanup}; this job started no registry container.`)
    }
    if (saved.registryContainers.length > 0) await removeRegistries(deps, saved.registryContainers)
  } catch (e) {
    core.warning(`cleanup failed: ${errorMessage(e)}`)
  }
}
