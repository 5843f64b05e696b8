import {HostError, InputError} from '../errors.js'
import type {Inputs} from '../inputs.js'
import type {PhasePlan} from '../pipeline.js'
import {closeDebSet, versionMatchesPin, type DebInfo} from '../system/apt-model.js'
import type {GpuInfo} from '../nvidia/gpu.js'
import {LEGACY_PACKAGES, TOOLKIT_PACKAGES, nvidiaFragment} from '../nvidia/toolkit-model.js'
import {
  contradictions,
  diffConfigs,
  mergeFragments,
  sameConfig,
  serialiseDaemonConfig,
  type DaemonConfigParseError,
  type Fragment,
  type JsonObject
} from './daemon-config.js'

export const DAEMON_JSON = '/etc/docker/daemon.json'

/** What detection found for daemon.json, the driver and the toolkit. */
export interface DaemonFacts {
  /** The file's text; undefined when there is none. */
  text?: string
  config?: JsonObject
  parseError?: DaemonConfigParseError
  gpu?: GpuInfo
  /** Installed versions of the toolkit and legacy packages. */
  installed: Map<string, string>
  /** Runtimes the running daemon lists, and its default; undefined when it is not running. */
  runtimes?: string[]
  defaultRuntime?: string
  /** offline-debs contents and what is installed (offline toolkit installs). */
  debs: DebInfo[]
  provided: Set<string>
}

export type DaemonAction =
  | {kind: 'nvidia-repo'; url: string; key: string}
  | {kind: 'apt-update'}
  | {kind: 'remove-legacy'; packages: string[]}
  | {kind: 'install-toolkit'; pin?: string}
  | {kind: 'install-debs'; files: string[]}
  | {kind: 'write-config'; text: string; existed: boolean; diff: string[]}
  | {kind: 'restart'; reason: string}

export interface DaemonPlan extends PhasePlan {
  actions: DaemonAction[]
  nvidia: boolean
  warnings: string[]
  /** The daemon.json diff this plan writes (empty when unchanged). */
  diff: string[]
}

function describe(a: DaemonAction): string {
  switch (a.kind) {
    case 'nvidia-repo':
      return `add NVIDIA's container toolkit repository ${a.url}`
    case 'apt-update':
      return 'refresh the package lists (apt-get update)'
    case 'remove-legacy':
      return `replace ${a.packages.join(', ')} (removed, not purged; daemon.json kept)`
    case 'install-toolkit':
      return `install the NVIDIA container toolkit${a.pin ? ` ${a.pin}` : ''} (${TOOLKIT_PACKAGES.join(', ')})`
    case 'install-debs':
      return `install the NVIDIA container toolkit from offline-debs (${a.files.length} .deb files)`
    case 'write-config':
      return `${a.existed ? 'update' : 'create'} ${DAEMON_JSON}: ${a.diff.join('; ')}`
    case 'restart':
      return `restart Docker (${a.reason})`
  }
}

/** Does the installed toolkit satisfy the pin (or exist at all without one)? */
function toolkitReady(installed: Map<string, string>, pin: string | undefined): boolean {
  return TOOLKIT_PACKAGES.every(n => {
    const v = installed.get(n)
    return v !== undefined && (pin === undefined || versionMatchesPin(v, pin))
  })
}

/**
 * Plans the daemon-config phase (pure): the toolkit when the NVIDIA runtime is wanted, then one
 * merged daemon.json from every fragment, written only when its meaning changes, and one restart.
 */
export function planDaemon(
  facts: DaemonFacts,
  inputs: Inputs,
  registryFragments: readonly Fragment[] = []
): DaemonPlan {
  const warnings: string[] = []
  const actions: DaemonAction[] = []
  if (facts.parseError) {
    throw new HostError(
      `${DAEMON_JSON} is not valid JSON: ${facts.parseError.message}. It was left as it is: fix it (or move it away) and run again.`
    )
  }
  const nvidia =
    inputs.gpuRuntime === 'nvidia' || (inputs.gpuRuntime === 'auto' && facts.gpu !== undefined)
  if (inputs.gpuRuntime === 'nvidia' && facts.gpu === undefined) {
    warnings.push(
      'gpu-runtime is nvidia but no NVIDIA driver answers (nvidia-smi): configuring the runtime anyway; containers will see GPUs only once a driver is installed.'
    )
  }
  const fragments: Fragment[] = []
  if (nvidia) {
    fragments.push(nvidiaFragment(inputs))
    const legacy = LEGACY_PACKAGES.filter(n => facts.installed.has(n))
    if (!toolkitReady(facts.installed, inputs.nvidiaToolkitVersion) || legacy.length > 0) {
      if (inputs.offlineDebs !== undefined) {
        const {files, missing} = closeDebSet(TOOLKIT_PACKAGES, facts.debs, facts.provided)
        if (missing.length > 0) {
          throw new HostError(
            `offline-debs (${inputs.offlineDebs}) lacks packages the NVIDIA container toolkit needs: ${missing.join(', ')}.`
          )
        }
        if (legacy.length > 0) actions.push({kind: 'remove-legacy', packages: legacy})
        actions.push({kind: 'install-debs', files: files.map(f => f.file)})
      } else {
        actions.push({kind: 'nvidia-repo', url: inputs.nvidiaAptUrl, key: inputs.nvidiaAptKey})
        actions.push({kind: 'apt-update'})
        if (legacy.length > 0) actions.push({kind: 'remove-legacy', packages: legacy})
        actions.push({kind: 'install-toolkit', pin: inputs.nvidiaToolkitVersion})
      }
    }
  }
  fragments.push(...registryFragments)
  if (inputs.daemonConfig)
    fragments.push({source: 'daemon-config', value: inputs.daemonConfig as JsonObject})
  const clash = contradictions(fragments)
  if (clash.length > 0) {
    throw new InputError(
      'daemon-config',
      JSON.stringify(inputs.daemonConfig),
      `contradicts other inputs: ${clash.join('; ')}`
    )
  }
  const current = facts.config ?? {}
  const {merged, overwrites} = mergeFragments(current, fragments)
  for (const o of overwrites) {
    warnings.push(
      `${DAEMON_JSON}: ${o.source} changes ${o.path} from ${JSON.stringify(o.from)} to ${JSON.stringify(o.to)}`
    )
  }
  const diff =
    sameConfig(merged, current) && facts.text !== undefined ? [] : diffConfigs(current, merged)
  const write = fragments.length > 0 && diff.length > 0
  if (write) {
    actions.push({
      kind: 'write-config',
      text: serialiseDaemonConfig(merged),
      existed: facts.text !== undefined,
      diff
    })
  }
  if (facts.runtimes !== undefined || write) {
    const wantDefault = merged['default-runtime']
    const stale =
      facts.runtimes !== undefined &&
      ((nvidia && !facts.runtimes.includes('nvidia')) ||
        (typeof wantDefault === 'string' && facts.defaultRuntime !== wantDefault))
    if (write) actions.push({kind: 'restart', reason: `${DAEMON_JSON} changed`})
    else if (stale)
      actions.push({kind: 'restart', reason: `the running daemon has not loaded ${DAEMON_JSON}`})
  }
  const found = [
    facts.gpu
      ? `NVIDIA driver ${facts.gpu.driverVersion}${facts.gpu.cudaVersion ? ` (CUDA ${facts.gpu.cudaVersion})` : ''}, ${facts.gpu.gpus.length} GPU(s)`
      : 'no NVIDIA driver',
    TOOLKIT_PACKAGES.every(n => facts.installed.has(n))
      ? `toolkit ${facts.installed.get('nvidia-container-toolkit')}`
      : 'no toolkit',
    facts.text === undefined
      ? `no ${DAEMON_JSON}`
      : `${DAEMON_JSON} with ${Object.keys(current).length} key(s)`,
    facts.runtimes === undefined
      ? 'daemon not running'
      : `runtimes: ${facts.runtimes.join(', ')} (default ${facts.defaultRuntime ?? 'runc'})`
  ].join('; ')
  return {
    found,
    actions,
    steps: actions.map(a => ({description: describe(a)})),
    nvidia,
    warnings,
    diff: write ? diff : []
  }
}

/** The log lines that say why a daemon did not start (its last lines when none says so plainly). */
export function errorLines(log: string): string {
  const lines = log.trimEnd().split('\n')
  const errors = lines.filter(l => /level=(error|fatal)|unable to|failed to start|invalid/i.test(l))
  return (errors.length > 0 ? errors : lines).slice(-5).join('\n')
}
