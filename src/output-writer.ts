/** The one writer of the action's outputs: each output's text, through core.setOutput. */
import * as core from '@actions/core'
import {OUTPUT_NAMES, outputValues, type OutputName, type Outputs} from './outputs.js'

/**
 * Sets every output of `names` (every output, for the root action), so later steps can read each
 * one even after a failure.
 */
export function writeOutputs(o: Outputs, names: readonly OutputName[] | 'all' = 'all'): void {
  const values = outputValues(o)
  for (const name of names === 'all' ? OUTPUT_NAMES : names) core.setOutput(name, values[name])
}
