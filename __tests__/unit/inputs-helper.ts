import type {HostIdentity} from '../../src/host.js'
import type {InputHost} from '../../src/input-fields.js'
import {
  INPUT_DEFAULTS,
  parseInputs,
  phaseSettings,
  type InputName,
  type Inputs,
  type PhaseSettings
} from '../../src/inputs.js'

/** Input values to change from the action.yml defaults. */
export type RawOverrides = Partial<Record<InputName, string>>

/** A host whose names and addresses make `gpu-01` and `10.1.2.3` this machine. */
export const ME: HostIdentity = {names: ['gpu-01'], addresses: ['127.0.0.1', '10.1.2.3']}

/** An InputHost where exactly `paths` exist. */
export function pathsHost(paths: Record<string, 'file' | 'dir'>): InputHost {
  return {pathKind: p => paths[p]}
}

/** The validated inputs for the defaults changed by `o`, with `paths` existing. */
export function parseWith(
  o: RawOverrides = {},
  paths: Record<string, 'file' | 'dir'> = {}
): Inputs {
  return parseInputs({...INPUT_DEFAULTS, ...o}, pathsHost(paths))
}

/** Each phase's settings for those inputs on a host that is `me`. */
export function settingsWith(
  o: RawOverrides = {},
  paths: Record<string, 'file' | 'dir'> = {},
  me: HostIdentity = ME
): PhaseSettings {
  return phaseSettings(parseWith(o, paths), me)
}
