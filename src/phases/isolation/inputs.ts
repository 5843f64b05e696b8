/** The gpu-isolation input: its action.yml default, its type, and its parser (pure). */
import {oneOf, type RawInputs} from '../../input-fields.js'

/** What gpu-isolation asks for. */
export type IsolationMode = 'keep' | 'strict' | 'off'

/** gpu-isolation with its action.yml default. */
export const ISOLATION_INPUTS = {'gpu-isolation': 'keep'} as const

/**
 * strict: the toolkit ignores an unprivileged container's NVIDIA_VISIBLE_DEVICES; off: what strict
 * changed is put back; keep (the default): the toolkit's config is left as it is, so a run that does
 * not name gpu-isolation never undoes an administrator's strict.
 */
export interface IsolationInputs {
  gpuIsolation: IsolationMode
}

/** Validates gpu-isolation (pure); throws InputError. */
export function parseIsolationInputs(
  raw: RawInputs<keyof typeof ISOLATION_INPUTS>
): IsolationInputs {
  return {gpuIsolation: oneOf(raw, 'gpu-isolation', ['keep', 'strict', 'off'] as const)}
}
