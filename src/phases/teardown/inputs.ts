/** The teardown input: its action.yml default, its type, and its parser (pure). */
import {oneOf, type RawInputs} from '../../input-fields.js'

/** teardown with its action.yml default. */
export const TEARDOWN_INPUTS = {teardown: 'auto'} as const

/** What `teardown` says: on where leases are used (auto), always, or never. */
export interface TeardownInputs {
  teardown: 'auto' | 'true' | 'false'
}

/** Validates teardown (pure); throws InputError. */
export function parseTeardownInputs(raw: RawInputs<keyof typeof TEARDOWN_INPUTS>): TeardownInputs {
  return {teardown: oneOf(raw, 'teardown', ['auto', 'true', 'false'] as const)}
}

/** Whether the job's leftovers are removed when it ends: `auto` is on when the job leases GPUs. */
export function teardownOn(inputs: TeardownInputs, leasesGpus: boolean): boolean {
  return inputs.teardown === 'true' || (inputs.teardown === 'auto' && leasesGpus)
}
