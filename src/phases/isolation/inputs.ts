/** The gpu-isolation input: its action.yml default, its type, and its parser (pure). */
import {oneOf, type RawInputs} from '../../input-fields.js'

/** gpu-isolation with its action.yml default. */
export const ISOLATION_INPUTS = {'gpu-isolation': 'off'} as const

/** strict: the toolkit ignores an unprivileged container's NVIDIA_VISIBLE_DEVICES; off: as installed. */
export interface IsolationInputs {
  gpuIsolation: 'off' | 'strict'
}

/** Validates gpu-isolation (pure); throws InputError. */
export function parseIsolationInputs(
  raw: RawInputs<keyof typeof ISOLATION_INPUTS>
): IsolationInputs {
  return {gpuIsolation: oneOf(raw, 'gpu-isolation', ['off', 'strict'] as const)}
}
