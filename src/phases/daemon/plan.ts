/**
 * The daemon config phase's plan (pure): the NVIDIA toolkit when the runtime is wanted, then one
 * merged daemon.json from every fragment, written only when its meaning changes, and one restart.
 */
import {HostError} from '../../errors.js'
import type {Fragment, JsonObject} from '../../docker/daemon-fragment.js'
import {closeDebSet, versionMatchesPin, type DebInfo} from '../../system/apt-model.js'
import type {PhasePlan} from '../pipeline.js'
import {
  diffConfigs,
  mergeFragments,
  sameConfig,
  serialiseDaemonConfig,
  type DaemonConfigParseError
} from './daemon-config.js'
import type {GpuInfo} from './gpu.js'
import type {DaemonSettings} from './inputs.js'
import {
  PROXY_DROP_IN,
  planDaemonProxies,
  type DaemonProxyFacts,
  type DaemonProxyPlan,
  type ProxyAction
} from './proxy-plan.js'
import {LEGACY_PACKAGES, TOOLKIT_PACKAGES, nvidiaFragment} from './toolkit.js'

/** The one file this phase writes. */
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
  /** What the proxies need (engine version, systemd, drop-in, running values); only when set. */
  proxy?: DaemonProxyFacts
}

/** One change the daemon config phase makes, in the order it makes them. */
export type DaemonAction =
  | {kind: 'nvidia-repo'; url: string; key: string}
  | {kind: 'apt-update'}
  | {kind: 'remove-legacy'; packages: string[]}
  | {kind: 'install-toolkit'; pin?: string}
  | {kind: 'install-debs'; files: string[]}
  | {kind: 'write-config'; text: string; existed: boolean; diff: string[]}
  | ProxyAction
  | {kind: 'restart'; reason: string}

/** The daemon config phase's plan: its actions, whether the NVIDIA runtime is wanted, the file's diff. */
export interface DaemonPlan extends PhasePlan {
  actions: DaemonAction[]
  nvidia: boolean
  /** The daemon.json diff this plan writes (empty when unchanged). */
  diff: string[]
  /** How the proxies reach the daemon; undefined when none is set. */
  proxyWay?: DaemonProxyPlan['way']
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
    case 'write-dropin':
      return `write ${PROXY_DROP_IN} (HTTP_PROXY, HTTPS_PROXY, NO_PROXY for dockerd)`
    case 'remove-dropin':
      return `remove ${PROXY_DROP_IN} (daemon.json carries the proxies on this engine)`
    case 'daemon-reload':
      return 'reload systemd units (systemctl daemon-reload)'
    case 'restart':
      return `restart Docker (${a.reason})`
  }
}

/** The proxies' drop-in changes go before the one restart; their reason adds one when none is planned. */
function withProxyActions(actions: DaemonAction[], proxy: DaemonProxyPlan): DaemonAction[] {
  const at = actions.findIndex(a => a.kind === 'restart')
  if (at >= 0) return [...actions.slice(0, at), ...proxy.actions, ...actions.slice(at)]
  const restart: DaemonAction[] = proxy.restart ? [{kind: 'restart', reason: proxy.restart}] : []
  return [...actions, ...proxy.actions, ...restart]
}

/** Does the installed toolkit satisfy the pin (or exist at all without one)? */
function toolkitReady(installed: Map<string, string>, pin: string | undefined): boolean {
  return TOOLKIT_PACKAGES.every(n => {
    const v = installed.get(n)
    return v !== undefined && (pin === undefined || versionMatchesPin(v, pin))
  })
}

/** The NVIDIA runtime is wanted: asked for, or auto with a driver present. */
function wantsNvidia(facts: DaemonFacts, inputs: DaemonSettings): boolean {
  return inputs.gpuRuntime === 'nvidia' || (inputs.gpuRuntime === 'auto' && facts.gpu !== undefined)
}

/** The toolkit from offline-debs or NVIDIA's repository, when it is missing, at another pin, or legacy. */
function toolkitActions(facts: DaemonFacts, inputs: DaemonSettings): DaemonAction[] {
  const legacy = LEGACY_PACKAGES.filter(n => facts.installed.has(n))
  if (toolkitReady(facts.installed, inputs.nvidiaToolkitVersion) && legacy.length === 0) return []
  const removeLegacy: DaemonAction[] =
    legacy.length > 0 ? [{kind: 'remove-legacy', packages: legacy}] : []
  if (inputs.offlineDebs !== undefined) {
    const {files, missing} = closeDebSet(TOOLKIT_PACKAGES, facts.debs, facts.provided)
    if (missing.length > 0) {
      throw new HostError(
        `offline-debs (${inputs.offlineDebs}) lacks packages the NVIDIA container toolkit needs: ${missing.join(', ')}.`
      )
    }
    return [...removeLegacy, {kind: 'install-debs', files: files.map(f => f.file)}]
  }
  return [
    {kind: 'nvidia-repo', url: inputs.nvidiaAptUrl, key: inputs.nvidiaAptKey},
    {kind: 'apt-update'},
    ...removeLegacy,
    {kind: 'install-toolkit', pin: inputs.nvidiaToolkitVersion}
  ]
}

/**
 * Every fragment of daemon.json, in precedence order. Contradictions between them were refused
 * while the inputs were read; the registry's fragments only add to lists.
 */
function daemonFragments(
  inputs: DaemonSettings,
  nvidia: boolean,
  proxy: readonly Fragment[]
): Fragment[] {
  return [
    ...(nvidia ? [nvidiaFragment(inputs)] : []),
    ...inputs.registryFragments,
    ...proxy,
    ...(inputs.daemonConfig ? [{source: 'daemon-config', value: inputs.daemonConfig}] : [])
  ]
}

/** The write (when the merged file means something new) and the one restart, with their warnings. */
function configActions(
  facts: DaemonFacts,
  fragments: readonly Fragment[],
  nvidia: boolean
): {actions: DaemonAction[]; diff: string[]; warnings: string[]} {
  const current = facts.config ?? {}
  const {merged, overwrites} = mergeFragments(current, fragments)
  const warnings = overwrites.map(
    o =>
      `${DAEMON_JSON}: ${o.source} changes ${o.path} from ${JSON.stringify(o.from)} to ${JSON.stringify(o.to)}`
  )
  const diff =
    sameConfig(merged, current) && facts.text !== undefined ? [] : diffConfigs(current, merged)
  const write = fragments.length > 0 && diff.length > 0
  const actions: DaemonAction[] = []
  if (write) {
    actions.push({
      kind: 'write-config',
      text: serialiseDaemonConfig(merged),
      existed: facts.text !== undefined,
      diff
    })
    actions.push({kind: 'restart', reason: `${DAEMON_JSON} changed`})
  } else if (facts.runtimes !== undefined && notLoaded(facts, merged, nvidia)) {
    actions.push({kind: 'restart', reason: `the running daemon has not loaded ${DAEMON_JSON}`})
  }
  return {actions, diff: write ? diff : [], warnings}
}

/** The running daemon lacks the nvidia runtime or the default runtime the file names. */
function notLoaded(facts: DaemonFacts, merged: JsonObject, nvidia: boolean): boolean {
  const runtimes = facts.runtimes ?? []
  const wantDefault = merged['default-runtime']
  return (
    (nvidia && !runtimes.includes('nvidia')) ||
    (typeof wantDefault === 'string' && facts.defaultRuntime !== wantDefault)
  )
}

/** What detection found, in one line. */
function describeFound(facts: DaemonFacts): string {
  const gpu = facts.gpu
  return [
    gpu
      ? `NVIDIA driver ${gpu.driverVersion}${gpu.cudaVersion ? ` (CUDA ${gpu.cudaVersion})` : ''}, ${gpu.gpus.length} GPU(s)`
      : 'no NVIDIA driver',
    TOOLKIT_PACKAGES.every(n => facts.installed.has(n))
      ? `toolkit ${facts.installed.get('nvidia-container-toolkit')}`
      : 'no toolkit',
    facts.text === undefined
      ? `no ${DAEMON_JSON}`
      : `${DAEMON_JSON} with ${Object.keys(facts.config ?? {}).length} key(s)`,
    facts.runtimes === undefined
      ? 'daemon not running'
      : `runtimes: ${facts.runtimes.join(', ')} (default ${facts.defaultRuntime ?? 'runc'})`
  ].join('; ')
}

/**
 * Plans the daemon config phase (pure): the toolkit when the NVIDIA runtime is wanted, then one
 * merged daemon.json from every fragment, written only when its meaning changes, and one restart.
 * Throws HostError for a malformed file, which is never overwritten.
 */
export function planDaemon(facts: DaemonFacts, inputs: DaemonSettings): DaemonPlan {
  if (facts.parseError) {
    throw new HostError(
      `${DAEMON_JSON} is not valid JSON: ${facts.parseError.message}. It was left as it is: fix it (or move it away) and run again.`
    )
  }
  const nvidia = wantsNvidia(facts, inputs)
  const noDriver =
    inputs.gpuRuntime === 'nvidia' && facts.gpu === undefined
      ? [
          'gpu-runtime is nvidia but no NVIDIA driver answers (nvidia-smi): configuring the runtime anyway; containers will see GPUs only once a driver is installed.'
        ]
      : []
  const toolkit = nvidia ? toolkitActions(facts, inputs) : []
  const proxy = planDaemonProxies(facts.proxy, inputs.proxies)
  const config = configActions(facts, daemonFragments(inputs, nvidia, proxy.fragments), nvidia)
  const actions = [...toolkit, ...withProxyActions(config.actions, proxy)]
  return {
    found: describeFound(facts) + (proxy.way ? `; proxies through ${proxy.way}` : ''),
    actions,
    steps: actions.map(a => ({description: describe(a)})),
    nvidia,
    warnings: [...noDriver, ...config.warnings, ...proxy.warnings],
    diff: config.diff,
    proxyWay: proxy.way
  }
}

/** The log lines that say why a daemon did not start (its last lines when none says so plainly). */
export function errorLines(log: string): string {
  const lines = log.trimEnd().split('\n')
  const errors = lines.filter(l => /level=(error|fatal)|unable to|failed to start|invalid/i.test(l))
  return (errors.length > 0 ? errors : lines).slice(-5).join('\n')
}
