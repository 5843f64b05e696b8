/**
 * The action's inputs: every phase's slice composed into one validated, frozen Inputs, and the
 * only reader of the runner's raw input values (core.getInput).
 */
import * as core from '@actions/core'
import type {HostIdentity} from './host.js'
import {bool, oneOf, type InputHost, type RawInputs} from './input-fields.js'
import {
  DAEMON_INPUTS,
  parseDaemonInputs,
  type DaemonInputs,
  type DaemonSettings
} from './phases/daemon/inputs.js'
import {ENGINE_INPUTS, parseEngineInputs, type EngineInputs} from './phases/engine/inputs.js'
import {
  PUSH_INPUTS,
  parsePushInputs,
  type PushInputs,
  type PushSettings
} from './phases/push/inputs.js'
import {
  REGISTRY_INPUTS,
  parseRegistryInputs,
  type RegistryInputs,
  type RegistrySettings
} from './phases/registry/inputs.js'
import {registryFragments} from './phases/registry/spec.js'
import type {Cleanup} from './state.js'

/** The inputs that shape the whole run rather than one phase. */
const RUN_INPUTS = {'dry-run': 'false', summary: 'true', cleanup: 'none'} as const

/**
 * Every input with its action.yml default. action.yml is the source of truth; this table repeats
 * it so `node dist/index.js` outside a runner (no INPUT_* set) runs on the same defaults, and a
 * unit test keeps the two equal.
 */
export const INPUT_DEFAULTS = {
  ...ENGINE_INPUTS,
  ...DAEMON_INPUTS,
  ...REGISTRY_INPUTS,
  ...PUSH_INPUTS,
  ...RUN_INPUTS
} as const

/** The name of an input, as action.yml spells it. */
export type InputName = keyof typeof INPUT_DEFAULTS
/** Every input's raw text. */
export type AllRawInputs = RawInputs<InputName>

/** What the whole run reads: dry run, summary, and what the post step cleans up. */
export interface RunInputs {
  dryRun: boolean
  summary: boolean
  cleanup: Cleanup
}

/** The validated inputs, one slice per phase; nothing downstream reads raw input text. */
export interface Inputs {
  engine: EngineInputs
  daemon: DaemonInputs
  registry: RegistryInputs
  push: PushInputs
  run: RunInputs
}

function parseRunInputs(raw: RawInputs<keyof typeof RUN_INPUTS>): RunInputs {
  return {
    dryRun: bool(raw, 'dry-run'),
    summary: bool(raw, 'summary'),
    cleanup: oneOf(raw, 'cleanup', ['none', 'registry', 'all'] as const)
  }
}

/**
 * Validates every input before anything changes (pure apart from `host.pathKind`), slice by slice
 * in action.yml's order. Throws InputError with one line naming the input, the value and what is
 * accepted.
 */
export function parseInputs(raw: AllRawInputs, host: InputHost): Inputs {
  const engine = Object.freeze(parseEngineInputs(raw, host))
  const daemon = Object.freeze(parseDaemonInputs(raw, host))
  const registry = Object.freeze(parseRegistryInputs(raw, host))
  const push = Object.freeze(parsePushInputs(raw, registry.registry))
  const run = Object.freeze(parseRunInputs(raw))
  return Object.freeze({engine, daemon, registry, push, run})
}

/** What each phase reads: its own slice, and what it needs from the others. */
export interface PhaseSettings {
  engine: EngineInputs
  daemon: DaemonSettings
  registry: RegistrySettings
  push: PushSettings
}

/**
 * Each phase's settings (pure): the air-gapped folder for the daemon and registry phases, the
 * registry's daemon.json fragments for the daemon phase, and how to reach `registry` for pushes.
 */
export function phaseSettings(inputs: Inputs, identity: HostIdentity): PhaseSettings {
  const {engine, daemon, registry, push} = inputs
  const offlineDebs = engine.offlineDebs
  return {
    engine,
    daemon: {...daemon, offlineDebs, registryFragments: registryFragments(registry, identity)},
    registry: {...registry, offlineDebs},
    push: {
      ...push,
      registry: registry.registry,
      registryCa: registry.registryTls?.cert
    }
  }
}

/** Reads every input (INPUT_* unset → the action.yml default); the only caller of core.getInput. */
export function readRawInputs(env: NodeJS.ProcessEnv = process.env): AllRawInputs {
  const raw = {} as Record<InputName, string>
  for (const name of Object.keys(INPUT_DEFAULTS) as InputName[]) {
    const key = `INPUT_${name.replace(/ /g, '_').toUpperCase()}`
    // The runner always sets every input; outside a runner, unset means "use the default".
    raw[name] =
      env[key] === undefined
        ? INPUT_DEFAULTS[name]
        : core.getInput(name, {trimWhitespace: name !== 'password' && name !== 'registry-htpasswd'})
  }
  // Secrets are masked before anything could print them.
  if (raw.password !== '') core.setSecret(raw.password)
  for (const line of raw['registry-htpasswd'].split(/\r?\n/)) {
    const colon = line.indexOf(':')
    if (colon > 0 && line.length > colon + 1) core.setSecret(line.slice(colon + 1))
  }
  return raw
}
