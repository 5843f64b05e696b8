import * as core from '@actions/core'
import {errorMessage} from './errors.js'
import {ExecRunner, type CommandRunner} from './exec/runner.js'
import {releaseLeases} from './phases/gpus/release.js'
import {readPostState, runnerState, type StateStore} from './state.js'

/** What the post step runs on; tests give a recording runner and a state map. */
export interface PostDeps {
  runner: CommandRunner
  state: StateStore
}

/**
 * The post step: releases the GPU leases its main step took, removes the job's DOCKER_CONFIG (the
 * login in it) whenever the main step made one, and with cleanup: registry or all (as the main step
 * validated it), the registry containers this job started (never their data). It warns, never
 * fails: a cleanup problem must not turn a green job red.
 */
export async function post(overrides: Partial<PostDeps> = {}): Promise<void> {
  const {runner, state} = {runner: new ExecRunner(), state: runnerState, ...overrides}
  try {
    const saved = readPostState(state)
    // First, and whatever cleanup says: a waiting job gets the GPUs as soon as this one is done.
    await releaseLeases(runner, saved.gpuLeases).catch((e: unknown) =>
      core.warning(`Releasing the GPU leases failed: ${errorMessage(e)}`)
    )
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
    for (const name of saved.registryContainers) {
      await runner.run(['docker', 'rm', '--force', name], {root: true})
      core.info(`cleanup: removed ${name}, which this job started (its data stays on the host).`)
    }
  } catch (e) {
    core.warning(`cleanup failed: ${errorMessage(e)}`)
  }
}
