/**
 * The action's inputs: every phase's slice composed into one validated, frozen Inputs, and the
 * only reader of the runner's raw input values (core.getInput).
 */
import * as core from '@actions/core'
import type {HostIdentity} from './host.js'
import {fullNoProxy, type Proxies} from './docker/proxy.js'
import {InputError} from './errors.js'
import {bool, oneOf, type InputHost, type RawInputs} from './input-fields.js'
import {
  DAEMON_INPUTS,
  parseDaemonInputs,
  type DaemonInputs,
  type DaemonSettings
} from './phases/daemon/inputs.js'
import {
  DISK_INPUTS,
  parseDiskInputs,
  type DiskInputs,
  type DiskSettings
} from './phases/disk/inputs.js'
import {ENGINE_INPUTS, parseEngineInputs, type EngineInputs} from './phases/engine/inputs.js'
import {
  GPU_INPUTS,
  gpusText,
  parseGpuInputs,
  type GpuInputs,
  type GpuSettings
} from './phases/gpus/inputs.js'
import {
  GPU_HEALTH_INPUTS,
  parseGpuHealthInputs,
  type GpuHealthInputs
} from './phases/gpus/health-inputs.js'
import type {DriverHoldInputs} from './phases/gpus/driver-hold-phase.js'
import {
  PROXY_INPUTS,
  parseProxyInputs,
  type ProxyInputs,
  type ProxySettings
} from './phases/proxy/inputs.js'
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
import {
  HOOK_INPUTS,
  parseHookInputs,
  type HookInputs,
  type HookSettings
} from './phases/hooks/inputs.js'
import {
  ISOLATION_INPUTS,
  parseIsolationInputs,
  type IsolationInputs
} from './phases/isolation/inputs.js'
import {teardownPhase} from './phases/teardown/phase.js'
import {
  TEARDOWN_INPUTS,
  parseTeardownInputs,
  type TeardownInputs
} from './phases/teardown/inputs.js'
import {LABEL_MANAGED, registryFragments, wantsLocalRegistry} from './phases/registry/spec.js'
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
  ...GPU_INPUTS,
  ...GPU_HEALTH_INPUTS,
  ...REGISTRY_INPUTS,
  ...PROXY_INPUTS,
  ...PUSH_INPUTS,
  ...DISK_INPUTS,
  ...RUN_INPUTS,
  ...TEARDOWN_INPUTS,
  ...HOOK_INPUTS,
  ...ISOLATION_INPUTS
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
  gpus: GpuInputs
  gpuHealth: GpuHealthInputs
  registry: RegistryInputs
  proxy: ProxyInputs
  push: PushInputs
  disk: DiskInputs
  run: RunInputs
  teardown: TeardownInputs
  hooks: HookInputs
  isolation: IsolationInputs
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
  const gpus = Object.freeze(parseGpuInputs(raw))
  const gpuHealth = Object.freeze(parseGpuHealthInputs(raw))
  const registryOwn = parseRegistryInputs(raw, host)
  const proxy = Object.freeze(parseProxyInputs(raw))
  refuseTwoProxySources(daemon, proxy)
  const push = Object.freeze(parsePushInputs(raw, registryOwn.registry))
  const registry = Object.freeze({...registryOwn, pushesImages: push.images.length > 0})
  const disk = Object.freeze(parseDiskInputs(raw))
  const run = Object.freeze(parseRunInputs(raw))
  const teardown = Object.freeze(parseTeardownInputs(raw))
  const hooks = Object.freeze(parseHookInputs(raw))
  const isolation = Object.freeze(parseIsolationInputs(raw))
  return Object.freeze({
    engine,
    daemon,
    gpus,
    gpuHealth,
    registry,
    proxy,
    push,
    disk,
    run,
    teardown,
    hooks,
    isolation
  })
}

/** daemon-config's own `proxies` and the proxy inputs would fight over one key: one source only. */
function refuseTwoProxySources(daemon: DaemonInputs, proxy: ProxyInputs): void {
  const own = daemon.daemonConfig?.proxies
  if (own !== undefined && (proxy.http !== undefined || proxy.https !== undefined)) {
    throw new InputError(
      'daemon-config',
      JSON.stringify({proxies: own}),
      'sets proxies while http-proxy or https-proxy is set: give proxies through those inputs only'
    )
  }
}

/**
 * The proxies the run configures (pure), undefined when neither http-proxy nor https-proxy is set:
 * no-proxy joined by loopback, this host's names and fixed addresses, and the local registry.
 */
export function proxiesFor(inputs: Inputs, identity: HostIdentity): Proxies | undefined {
  const {http, https, noProxy} = inputs.proxy
  if (http === undefined && https === undefined) return undefined
  const registry = wantsLocalRegistry(inputs.registry, identity)
    ? inputs.registry.registry.host
    : undefined
  const addresses = identity.fixedAddresses ?? identity.addresses
  return {http, https, noProxy: fullNoProxy(noProxy, {names: identity.names, addresses}, registry)}
}

/** What each phase reads: its own slice, and what it needs from the others. */
export interface PhaseSettings {
  proxy: ProxySettings
  engine: EngineInputs
  daemon: DaemonSettings
  gpus: GpuSettings
  gpuHealth: GpuHealthInputs
  driverHold: DriverHoldInputs
  registry: RegistrySettings
  push: PushSettings
  disk: DiskSettings
  hooks: HookSettings
  isolation: IsolationInputs
}

/** What the disk phase must keep: the registries (image, containers, data) and the job's images. */
function diskSettings(inputs: Inputs): DiskSettings {
  const {registry, push, disk} = inputs
  return {
    ...disk,
    keepImages: [
      {ref: registry.registryImage, why: "the action's registry images"},
      ...push.images.map(t => ({ref: t.source, why: "this job's images to push"}))
    ],
    managedLabel: LABEL_MANAGED,
    registryData: [
      registry.registryData,
      `${registry.registryData}-mirror`,
      ...registry.registryCaches.map(c => `${registry.registryData}-cache-${c.slug}`)
    ]
  }
}

/** The GPU phase's settings: with teardown, a dead job's leftovers go before its GPU is handed on. */
export function gpuSettings(gpus: GpuInputs, teardown: boolean): GpuSettings {
  return {
    ...gpus,
    tearDown: teardown
      ? (runner, job) => teardownPhase.run(runner, {...job, managedLabel: LABEL_MANAGED})
      : undefined
  }
}

/**
 * Each phase's settings (pure): the air-gapped folder for the daemon and registry phases, the
 * registry's daemon.json fragments for the daemon phase, how to reach `registry` for pushes, the
 * proxies for every phase that configures them, and what the disk phase must never remove.
 */
export function phaseSettings(inputs: Inputs, identity: HostIdentity): PhaseSettings {
  const {engine, daemon, registry, push} = inputs
  const offlineDebs = engine.offlineDebs
  const proxies = proxiesFor(inputs, identity)
  return {
    proxy: {proxies},
    engine,
    gpus: gpuSettings(
      inputs.gpus,
      teardownPhase.isOn(inputs.teardown, inputs.gpus.gpus.kind !== 'none')
    ),
    gpuHealth: {
      ...inputs.gpuHealth,
      teardown: teardownPhase.isOn(inputs.teardown, inputs.gpus.gpus.kind !== 'none')
    },
    // gpu-runtime: none leaves the GPUs alone, the driver's packages included.
    driverHold: {hold: inputs.gpuHealth.holdDriver && daemon.gpuRuntime !== 'none'},
    disk: diskSettings(inputs),
    hooks: {
      ...inputs.hooks,
      config: {
        gpus: gpusText(inputs.gpus.gpus),
        gpuWait: inputs.gpus.gpuWait,
        teardown: teardownPhase.isOn(inputs.teardown, inputs.gpus.gpus.kind !== 'none'),
        gpuHealth: inputs.gpuHealth.mode,
        gpuCountExpected: inputs.gpuHealth.countExpected
      }
    },
    daemon: {
      ...daemon,
      offlineDebs,
      registryFragments: registryFragments(registry, identity),
      proxies,
      leaseRuntime: inputs.hooks.runnerHooks === 'install'
    },
    isolation: inputs.isolation,
    registry: {...registry, offlineDebs, proxies},
    push: {
      ...push,
      proxies,
      registry: registry.registry,
      registryCa: registry.registryTls?.cert,
      registryLocal: wantsLocalRegistry(registry, identity)
    }
  }
}

/** Which inputs an entry's action.yml declares, and its own defaults (see entries.ts). */
export interface EntryInputs {
  /** The inputs its action.yml declares, in that order; 'all' for the root. */
  inputs: readonly InputName[] | 'all'
  /**
   * Values that differ from the root action's defaults here: a declared input's default in this
   * entry's action.yml, or the fixed value of an input this entry does not declare.
   */
  defaults: Partial<Record<InputName, string>>
}

/**
 * Reads the inputs `entry` declares (INPUT_* unset → its action.yml default); an input it does not
 * declare takes the entry's fixed value or the root's default, whatever the environment holds. The
 * only caller of core.getInput.
 */
export function readRawInputs(
  env: NodeJS.ProcessEnv = process.env,
  entry: EntryInputs = {inputs: 'all', defaults: {}}
): AllRawInputs {
  const raw = {} as Record<InputName, string>
  for (const name of Object.keys(INPUT_DEFAULTS) as InputName[]) {
    const key = `INPUT_${name.replace(/ /g, '_').toUpperCase()}`
    const fallback = entry.defaults[name] ?? INPUT_DEFAULTS[name]
    // The runner always sets every declared input; outside a runner, unset means "use the default".
    raw[name] =
      (entry.inputs !== 'all' && !entry.inputs.includes(name)) || env[key] === undefined
        ? fallback
        : core.getInput(name, {trimWhitespace: !UNTRIMMED.has(name)})
  }
  // Secrets are masked before anything could print them.
  for (const secret of secretValues(raw)) core.setSecret(secret)
  return raw
}

/** Inputs read as given: spaces at either end may belong to a password. */
const UNTRIMMED: ReadonlySet<string> = new Set([
  'password',
  'registry-htpasswd',
  'registry-cache-credentials'
])

/** The password of a proxy URL (as written and decoded), or a lone user that stands for a token. */
function proxySecrets(value: string): string[] {
  const m = /^[a-z][a-z0-9+.-]*:\/\/([^@/]*)@/i.exec(value.trim())
  if (!m) return []
  const colon = m[1].indexOf(':')
  const secret = colon < 0 ? m[1] : m[1].slice(colon + 1)
  if (secret === '') return []
  let decoded = secret
  try {
    decoded = decodeURIComponent(secret)
  } catch {
    // a malformed escape is refused by the parser; mask it as written
  }
  return [...new Set([secret, decoded])]
}

/** Every secret in the raw inputs (pure): passwords, htpasswd and cache tokens, proxy credentials. */
export function secretValues(raw: AllRawInputs): string[] {
  const out: string[] = []
  if (raw.password !== '') out.push(raw.password)
  const afterColon = (line: string): string | undefined => {
    const colon = line.indexOf(':')
    return colon > 0 && line.length > colon + 1 ? line.slice(colon + 1) : undefined
  }
  for (const line of raw['registry-htpasswd'].split(/\r?\n/)) {
    const secret = afterColon(line)
    if (secret !== undefined) out.push(secret)
  }
  for (const line of raw['registry-cache-credentials'].split(/\r?\n/)) {
    const secret = afterColon(line.trim().replace(/^\S+\s+/, ''))
    if (secret !== undefined) out.push(secret)
  }
  out.push(...proxySecrets(raw['http-proxy']), ...proxySecrets(raw['https-proxy']))
  return out
}
