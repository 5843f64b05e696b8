import * as core from '@actions/core'
import {ExecRunner, type CommandRunner} from './exec/runner.js'
import {readRawInputs} from './inputs.js'
import {STATE_DOCKER_CONFIG} from './push/push.js'
import {STATE_STARTED} from './registry/registry.js'

/**
 * The post step: removes the job's DOCKER_CONFIG (the login in it) whenever the main step made one,
 * and with cleanup: registry or all, the registry containers this job started (never their data).
 * It warns, never fails: a cleanup problem must not turn a green job red.
 */
export async function post(runner: CommandRunner = new ExecRunner()): Promise<void> {
  try {
    const config = core.getState(STATE_DOCKER_CONFIG)
    if (config) {
      await runner.run(['rm', '-rf', '--', config], {root: true})
      core.info(`Removed this job's DOCKER_CONFIG (${config}) and the login in it.`)
    }
    const cleanup = readRawInputs().cleanup || 'none'
    if (cleanup === 'none') {
      core.info('cleanup: none; leaving the host as configured.')
      return
    }
    const started = JSON.parse(core.getState(STATE_STARTED) || '[]') as string[]
    if (started.length === 0)
      core.info(`cleanup: ${cleanup}; this job started no registry container.`)
    for (const name of started) {
      await runner.run(['docker', 'rm', '--force', name], {root: true})
      core.info(`cleanup: removed ${name}, which this job started (its data stays on the host).`)
    }
  } catch (e) {
    core.warning(`cleanup failed: ${e instanceof Error ? e.message : String(e)}`)
  }
}
