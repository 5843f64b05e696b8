import * as core from '@actions/core'
import {readRawInputs} from './inputs.js'

/**
 * The post step: undoes only what this run's state says it created. It warns, never fails: a
 * cleanup problem must not turn a green job red. This version starts nothing that needs undoing.
 */
export async function post(): Promise<void> {
  const cleanup = readRawInputs().cleanup || 'none'
  await Promise.resolve()
  if (cleanup === 'none') {
    core.info('cleanup: none; leaving the host as configured.')
    return
  }
  core.info(`cleanup: ${cleanup}; this run started nothing that needs removing.`)
}
