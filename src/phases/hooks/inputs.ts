/** The runner-hooks input: its action.yml default, its type, and its parser (pure). */
import {oneOf, type RawInputs} from '../../input-fields.js'

/** runner-hooks with its action.yml default. */
export const HOOK_INPUTS = {'runner-hooks': 'none'} as const

/** What `runner-hooks` asks for: install the runner's job hooks, remove them, or leave them. */
export interface HookInputs {
  runnerHooks: 'install' | 'remove' | 'none'
}

/** What the installed hooks do for every job of the runner: the lease and teardown. */
export interface HookConfig {
  /** `gpus` as an input would give it (empty: no lease). */
  gpus: string
  gpuWait: number
  teardown: boolean
  /** The health gate the started hook runs before leasing, as the main step would. */
  gpuHealth: 'fail' | 'warn' | 'off'
  gpuCountExpected?: number
}

/** What the hooks phase reads: its input, and what the hooks are to do. */
export interface HookSettings extends HookInputs {
  config: HookConfig
}

/** Validates runner-hooks (pure); throws InputError. */
export function parseHookInputs(raw: RawInputs<keyof typeof HOOK_INPUTS>): HookInputs {
  return {runnerHooks: oneOf(raw, 'runner-hooks', ['install', 'remove', 'none'] as const)}
}
