/** The post step: releases the job's GPU leases, removes its DOCKER_CONFIG and, with cleanup, the registry containers it started; warns, never fails. */
import * as core from '@actions/core'
import {errorMessage} from './errors.js'
import {ExecRunner, type CommandRunner} from './exec/runner.js'
import {releaseLeases} from './phases/gpus/release.js'
import {forgetUse, jobWorker, otherUsers} from './phases/registry/users.js'
import {privateTempDir} from './host.js'
import {readPostState, runnerState, type StateStore} from './state.js'
import {LOCK_DIR, acquireHostLock, type HostLock} from './system/lock.js'

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
    // First, and whatever cleanup says: a waiting job gets the GPUs as soon as this one is done.
    await releaseLeases(runner, saved.gpuLeases).catch((e: unknown) =>
      core.warning(`Releasing the GPU leases failed: ${errorMessage(e)}`)
    )
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
