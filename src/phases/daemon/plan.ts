/**
 * The daemon config phase's plan (pure): the NVIDIA toolkit when the runtime is wanted, then one
 * merged daemon.json from every fragment, written only when its meaning changes, and one restart.
 */
import {HostError} from '../../errors.js'
import {withoutCredentialsIn} from '../../docker/proxy.js'
import type {Fragment, JsonObject} from '../../docker/daemon-fragment.js'
import {closeDebSet, describeHold, versionMatchesPin, type DebInfo} from '../../models/apt-model.js'
import type {PhasePlan} from '../pipeline.js'
import {
  diffConfigs,
  mergeFragments,
  sameConfig,
  serialiseDaemonConfig,
  type DaemonConfigParseError
} from './daemon-config.js'
import type {GpuInfo} from './gpu.js'
import {looksForGpu, type DaemonState} from './facts.js'
import type {DaemonSettings} from './inputs.js'
import {classifyChange, type LoadedConfig} from './reload.js'
import {
  PROXY_DROP_IN,
  PROXY_ENV_FILE,
  planDaemonProxies,
  type DaemonProxyFacts,
  type DaemonProxyPlan,
  type ProxyAction
} from './proxy-plan.js'
import {leaseRuntimeFragment} from '../../docker/lease-runtime.js'
import {LEGACY_PACKAGES, TOOLKIT_PACKAGES, nvidiaFragment} from './toolkit.js'
import {
  describeDeviceFix,
  planDeviceFix,
  type CdiBlock,
  type DeviceFixAction,
  type DeviceFixFacts,
  type DeviceFixPlan
} from './device-fix.js'

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
  /** Packages apt holds (apt-mark showhold); read when the runtime is wanted. */
  held: Set<string>
  /** offline-debs contents and what is installed (offline toolkit installs). */
  debs: DebInfo[]
  provided: Set<string>
  /** Docker is a snap: it reads its own daemon.json and brings its own GPU support. */
  snap?: boolean
  /** What the running daemon has loaded (undefined when it does not answer). */
  loaded?: LoadedConfig
  /** Running containers this action did not start: what a restart must keep running. */
  workloads: string[]
  /** What the proxies need (engine version, systemd, drop-in, running values); only when set. */
  proxy?: DaemonProxyFacts
  /** What decides the GPU device fix (CDI spec, /dev/char links); read when the runtime may be wanted. */
  devices?: DeviceFixFacts
}

/** One change the daemon config phase makes, in the order it makes them. */
export type DaemonAction =
  | {kind: 'nvidia-repo'; url: string; key: string}
  | {kind: 'apt-update'}
  | {kind: 'remove-legacy'; packages: string[]}
  | {kind: 'install-toolkit'; pin?: string}
  | {kind: 'install-debs'; files: string[]}
  | {kind: 'hold'; packages: string[]}
  | {kind: 'write-config'; text: string; existed: boolean; diff: string[]}
  | ProxyAction
  | DeviceFixAction
  | ({kind: 'reload'} & Activation)
  | ({kind: 'restart'; reason: string} & Activation)

/**
 * How a config reaches the running daemon. A reload applies `reload` keys in place; a restart is
 * needed for `restart` keys (or when a reload did not take). `protect`: running containers are
 * kept alive across that restart by turning live-restore on for it (the file with live-restore
 * true), then back to what `config` says.
 */
export interface Activation {
  config: JsonObject
  reload: string[]
  restart: string[]
  workloads: string[]
  /** The daemon runs (else a restart is its start). */
  loaded: boolean
  /** live-restore is already on in the running daemon: containers survive a restart as it is. */
  liveRestore: boolean
  protect?: {text: string}
  /** live-restore cannot be used (swarm mode): a restart would stop the workloads. */
  unprotectable: boolean
}

/** The daemon config phase's plan: its actions, whether the NVIDIA runtime is wanted, the file's diff. */
export interface DaemonPlan extends PhasePlan {
  actions: DaemonAction[]
  nvidia: boolean
  /** The daemon.json diff this plan writes (empty when unchanged). */
  diff: string[]
  /** How the proxies reach the daemon; undefined when none is set. */
  proxyWay?: DaemonProxyPlan['way']
  /** The GPU device fix for this host; undefined when the NVIDIA runtime is not wanted. */
  deviceFix?: DeviceFixPlan
  /** What detection showed in the summary, for the device fix to be added to it. */
  shown: DaemonState
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
    case 'hold':
      return describeHold(a.packages)
    case 'write-config':
      return `${a.existed ? 'update' : 'create'} ${DAEMON_JSON}: ${a.diff.join('; ')}`
    case 'reload':
      return `reload Docker (SIGHUP) to apply ${a.reload.join(', ')}: same daemon, running containers untouched`
    case 'write-dropin':
      return `write ${PROXY_DROP_IN} and ${PROXY_ENV_FILE} (0600: HTTP_PROXY, HTTPS_PROXY, NO_PROXY for dockerd)`
    case 'remove-dropin':
      return `remove ${PROXY_DROP_IN} and ${PROXY_ENV_FILE} (daemon.json carries the proxies on this engine)`
    case 'daemon-reload':
      return 'reload systemd units (systemctl daemon-reload)'
    case 'restart':
      return `restart Docker (${a.reason})${a.protect ? `; live-restore is on for the restart so ${a.workloads.length} running container(s) keep running, then put back` : ''}`
    case 'cdi-spec':
    case 'cdi-spec-remove':
    case 'dev-char-rule':
    case 'dev-char-links':
      return describeDeviceFix(a)
  }
}

/**
 * The proxies' drop-in changes go before the config reaches the daemon. When they need a restart
 * (a drop-in, or dockerd's environment), a planned reload becomes a restart, or one is added:
 * protected by live-restore like any other.
 */
function withProxyActions(
  config: ConfigActions,
  proxy: DaemonProxyPlan,
  facts: DaemonFacts,
  inputs: DaemonSettings
): DaemonAction[] {
  const at = config.actions.findIndex(a => a.kind === 'reload' || a.kind === 'restart')
  const before = at >= 0 ? config.actions.slice(0, at) : config.actions
  const planned = at >= 0 ? config.actions[at] : undefined
  const change = planned?.kind === 'reload' || planned?.kind === 'restart' ? planned : undefined
  if (!proxy.restart) return [...before, ...proxy.actions, ...(planned ? [planned] : [])]
  const restart = {reload: change?.reload ?? [], restart: [...(change?.restart ?? []), 'proxies']}
  const reason = change?.kind === 'restart' ? `${change.reason}; ${proxy.restart}` : proxy.restart
  return [...before, ...proxy.actions, activation(facts, inputs, restart, config.merged, reason)]
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

/**
 * Holds on the toolkit: a pin holds all four packages at their version; after an install the holds
 * the host had are put back. A ready, pinned toolkit that is not held gets its hold.
 */
function toolkitHolds(
  facts: DaemonFacts,
  inputs: DaemonSettings,
  installs: boolean
): DaemonAction[] {
  const pinned = inputs.nvidiaToolkitVersion !== undefined ? TOOLKIT_PACKAGES : []
  const wanted = installs
    ? [...new Set([...pinned, ...TOOLKIT_PACKAGES.filter(n => facts.held.has(n))])]
    : pinned.filter(n => !facts.held.has(n))
  return wanted.length > 0 ? [{kind: 'hold', packages: wanted}] : []
}

/** The toolkit (installed, or held at its pin) when the NVIDIA runtime is wanted. */
function toolkitActions(facts: DaemonFacts, inputs: DaemonSettings): DaemonAction[] {
  const install = toolkitInstall(facts, inputs)
  return [...install, ...toolkitHolds(facts, inputs, install.length > 0)]
}

/** The toolkit from offline-debs or NVIDIA's repository, when it is missing, at another pin, or legacy. */
function toolkitInstall(facts: DaemonFacts, inputs: DaemonSettings): DaemonAction[] {
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
  cdi: boolean,
  proxy: readonly Fragment[]
): Fragment[] {
  return [
    ...(nvidia ? [nvidiaFragment({nvidiaDefaultRuntime: inputs.nvidiaDefaultRuntime, cdi})] : []),
    ...(inputs.leaseRuntime ? [leaseRuntimeFragment] : []),
    ...inputs.registryFragments,
    ...proxy,
    ...(inputs.daemonConfig ? [{source: 'daemon-config', value: inputs.daemonConfig}] : [])
  ]
}

/** The write of daemon.json and how it reaches the daemon, with the merged config and warnings. */
interface ConfigActions {
  actions: DaemonAction[]
  diff: string[]
  warnings: string[]
  merged: JsonObject
}

/** The write (when the merged file means something new) and the one reload or restart, with their warnings. */
function configActions(
  facts: DaemonFacts,
  inputs: DaemonSettings,
  fragments: readonly Fragment[],
  nvidia: boolean
): ConfigActions {
  const current = facts.config ?? {}
  const {merged, overwrites} = mergeFragments(current, fragments)
  // Shown in the log and the summary: a proxy password, old or new, is never in them (the runner
  // masks only this run's inputs, not what an earlier run wrote).
  const warnings = overwrites.map(o =>
    withoutCredentialsIn(
      `${DAEMON_JSON}: ${o.source} changes ${o.path} from ${JSON.stringify(o.from)} to ${JSON.stringify(o.to)}`
    )
  )
  const diff = (
    sameConfig(merged, current) && facts.text !== undefined ? [] : diffConfigs(current, merged)
  ).map(withoutCredentialsIn)
  const write = fragments.length > 0 && diff.length > 0
  const actions: DaemonAction[] = []
  if (write) {
    actions.push({
      kind: 'write-config',
      text: serialiseDaemonConfig(merged),
      existed: facts.text !== undefined,
      diff
    })
    actions.push(activation(facts, inputs, classifyChange(current, merged), merged))
  } else if (facts.loaded !== undefined && notLoaded(facts, merged, nvidia)) {
    // The file is right but the daemon never read it (changed by hand, or a start it missed).
    const keys = ['runtimes', 'default-runtime'].filter(k => k in merged)
    actions.push(activation(facts, inputs, {reload: keys, restart: []}, merged))
  }
  return {actions, diff: write ? diff : [], warnings, merged}
}

/**
 * How `config` reaches the running daemon: a reload when every changed key is one dockerd
 * applies on SIGHUP, else a restart; a start when it is not running. Running containers this
 * action did not start are protected by live-restore, unless it is already on; where it cannot
 * be used (swarm mode) a restart is refused before any change unless allow-restart says so.
 */
function activation(
  facts: DaemonFacts,
  inputs: DaemonSettings,
  change: {reload: string[]; restart: string[]},
  config: JsonObject,
  reason = `${change.restart.join(', ')} only apply when dockerd starts`
): DaemonAction {
  const loaded = facts.loaded
  const workloads = loaded ? facts.workloads : []
  const base = {
    config,
    ...change,
    workloads,
    loaded: loaded !== undefined,
    liveRestore: loaded?.liveRestore === true,
    unprotectable: loaded?.swarm === true
  }
  if (!loaded)
    return {
      kind: 'restart',
      reason: 'Docker is not running: it starts with the new file',
      ...base,
      reload: [],
      restart: []
    }
  const exposed = workloads.length > 0 && !loaded.liveRestore
  if (change.restart.length > 0 && restartRefused(facts, inputs)) {
    throw new HostError(
      `Applying ${DAEMON_JSON} needs a restart of Docker (${change.restart.join(', ')} only apply at start), and live-restore cannot keep running containers alive here (swarm mode). ${DAEMON_JSON} was not changed. Running: ${workloads.join(', ')}. Make the change when they are done, or set allow-restart: true to restart anyway (they stop; those with a restart policy come back).`
    )
  }
  const protect =
    exposed && !loaded.swarm
      ? {text: serialiseDaemonConfig({...config, 'live-restore': true})}
      : undefined
  return change.restart.length === 0
    ? {kind: 'reload', ...base, protect}
    : {kind: 'restart', reason, ...base, protect}
}

/**
 * A restart of the running daemon would stop containers this action did not start and
 * live-restore cannot keep them (swarm mode), and allow-restart does not say to anyway.
 */
function restartRefused(facts: DaemonFacts, inputs: DaemonSettings): boolean {
  const loaded = facts.loaded
  return (
    loaded !== undefined &&
    facts.workloads.length > 0 &&
    !loaded.liveRestore &&
    loaded.swarm &&
    !inputs.allowRestart
  )
}

/** The running daemon lacks the nvidia runtime or the default runtime the file names. */
function notLoaded(facts: DaemonFacts, merged: JsonObject, nvidia: boolean): boolean {
  const runtimes = facts.loaded?.runtimes ?? []
  const wantDefault = merged['default-runtime']
  return (
    (nvidia && !runtimes.includes('nvidia')) ||
    (typeof wantDefault === 'string' && facts.loaded?.defaultRuntime !== wantDefault)
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
    facts.loaded === undefined
      ? 'daemon not running'
      : `runtimes: ${facts.loaded.runtimes.join(', ')} (default ${facts.loaded.defaultRuntime})`
  ].join('; ')
}

/** gpu-runtime: nvidia on a host where no driver answers yet is configured, with a warning. */
function noDriverWarning(facts: DaemonFacts, inputs: DaemonSettings): string[] {
  if (inputs.gpuRuntime !== 'nvidia' || facts.gpu !== undefined) return []
  return [
    'gpu-runtime is nvidia but no NVIDIA driver answers (nvidia-smi): configuring the runtime anyway; containers will see GPUs only once a driver is installed.'
  ]
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
  const toolkit = nvidia ? toolkitActions(facts, inputs) : []
  const devices = nvidia ? deviceFix(facts, inputs, toolkit) : undefined
  const proxy = planDaemonProxies(facts.proxy, inputs.proxies)
  const config = configActions(
    facts,
    inputs,
    daemonFragments(
      inputs,
      nvidia,
      inputs.nvidiaCdi === 'true' || devices?.features === true,
      proxy.fragments
    ),
    nvidia
  )
  const actions = [
    ...toolkit,
    ...(devices?.plan.actions ?? []),
    ...withProxyActions(config, proxy, facts, inputs)
  ]
  if (facts.snap && actions.length > 0) {
    throw new HostError(
      `Docker is installed as a snap: its daemon reads /var/snap/docker/current/config/daemon.json, not ${DAEMON_JSON}, and the NVIDIA toolkit's .deb packages break the snap's own GPU support. This run would ${actions.map(describe).join('; ')}. Make that change in the snap's file yourself (then sudo snap restart docker), or remove the snap (sudo snap remove docker) and let this action install Docker from apt.`
    )
  }
  return {
    found: describeFound(facts) + (proxy.way ? `; proxies through ${proxy.way}` : ''),
    actions,
    steps: actions.map(a => ({description: describe(a)})),
    nvidia,
    warnings: [
      ...noDriverWarning(facts, inputs),
      ...(devices?.plan.warnings ?? []),
      ...config.warnings,
      ...proxy.warnings
    ],
    diff: config.diff,
    proxyWay: proxy.way,
    deviceFix: devices?.plan,
    shown: {
      ...facts.loaded,
      gpuLooked: looksForGpu(inputs),
      gpu: facts.gpu && {
        count: facts.gpu.gpus.length,
        driverVersion: facts.gpu.driverVersion,
        cudaVersion: facts.gpu.cudaVersion
      }
    }
  }
}

/**
 * The GPU device fix, and whether daemon.json gets features.cdi: only where CDI is wanted and the
 * running daemon does not have it on already (so a ready host is not restarted for it).
 */
function deviceFix(
  facts: DaemonFacts,
  inputs: DaemonSettings,
  toolkit: readonly DaemonAction[]
): {plan: DeviceFixPlan; features: boolean} | undefined {
  if (facts.devices === undefined) return undefined
  const installing = toolkit.some(a => a.kind === 'install-toolkit' || a.kind === 'install-debs')
  const features = inputs.daemonConfig?.features
  const configOff =
    typeof features === 'object' &&
    features !== null &&
    !Array.isArray(features) &&
    features.cdi === false
  // Turning CDI on is a restart: auto does not make one that would be refused.
  const blocked: CdiBlock | undefined = configOff
    ? 'config'
    : !facts.devices.cdiOn && restartRefused(facts, inputs)
      ? 'restart'
      : undefined
  const plan = planDeviceFix(
    facts.devices,
    inputs.nvidiaCdi,
    {
      version: installing
        ? inputs.nvidiaToolkitVersion
        : facts.installed.get('nvidia-container-toolkit'),
      installing
    },
    blocked
  )
  return {plan, features: plan.cdi && !facts.devices.cdiOn}
}

/** The log lines that say why a daemon did not start (its last lines when none says so plainly). */
export function errorLines(log: string): string {
  const lines = log.trimEnd().split('\n')
  const errors = lines.filter(l => /level=(error|fatal)|unable to|failed to start|invalid/i.test(l))
  return (errors.length > 0 ? errors : lines).slice(-5).join('\n')
}
