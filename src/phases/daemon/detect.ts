/** Reads the daemon phase's facts: daemon.json, the toolkit's packages, nvidia-smi, the running daemon's loaded config, its workloads and proxies. */
import {heldPackages, installedPackages, readOfflineFolder} from '../../system/apt.js'
import {exists, readFileMaybe} from '../../system/files.js'
import {findNvidiaSmi} from '../../system/nvidia-smi.js'
import type {CommandRunner} from '../../exec/runner.js'
import {openEngineApi, type EngineApi} from '../../system/engine-api.js'
import type {PhaseContext} from '../pipeline.js'
import {DaemonConfigParseError, parseDaemonConfig} from './daemon-config.js'
import {daemonFacts, looksForGpu} from './facts.js'
import {parseNvidiaSmi, type GpuInfo} from './gpu.js'
import type {DaemonSettings} from './inputs.js'
import {DAEMON_JSON, type DaemonFacts} from './plan.js'
import {parseLoadedConfig, type LoadedConfig} from './reload.js'
import {detectDaemonProxies} from './proxies.js'
import {LEGACY_PACKAGES, TOOLKIT_PACKAGES} from './toolkit.js'
import {LABEL_MANAGED} from '../../docker/labels.js'
import {createHash} from 'node:crypto'
import {devCharLinks} from '../../system/dev-char.js'
import type {HostInfo} from '../../host.js'
import {
  CDI_RECORD,
  CDI_SPEC,
  DEV_CHAR_RULE,
  TOOLKIT_CDI_SPEC,
  parseCdiRecord,
  type DeviceFixFacts
} from './device-fix.js'

/** The unit toolkit 1.18 ships to keep its own spec current (where its packages put units). */
const CDI_REFRESH_UNITS = [
  '/usr/lib/systemd/system/nvidia-cdi-refresh.service',
  '/lib/systemd/system/nvidia-cdi-refresh.service'
]

/** What decides the GPU device fix: the spec and its record, the udev rule, the /dev/char links. */
export async function detectDeviceFix(
  runner: CommandRunner,
  host: Pick<HostInfo, 'systemd'>,
  loaded: LoadedConfig | undefined,
  gpu: GpuInfo | undefined
): Promise<DeviceFixFacts> {
  const [spec, record, rule, links, refresh, toolkitSpec] = await Promise.all([
    readFileMaybe(runner, CDI_SPEC),
    readFileMaybe(runner, CDI_RECORD),
    readFileMaybe(runner, DEV_CHAR_RULE),
    devCharLinks(),
    Promise.all(CDI_REFRESH_UNITS.map(exists)),
    exists(TOOLKIT_CDI_SPEC)
  ])
  return {
    systemd: host.systemd,
    cgroupDriver: loaded?.cgroupDriver,
    dockerVersion: loaded?.serverVersion,
    cdiOn: (loaded?.cdiSpecDirs ?? []).length > 0,
    driver: gpu?.driverVersion,
    devCharLinks: links,
    rule,
    specSha256: spec === undefined ? undefined : createHash('sha256').update(spec).digest('hex'),
    record: parseCdiRecord(record),
    toolkitSpec: refresh.some(Boolean) && toolkitSpec
  }
}

/** The driver as nvidia-smi reports it (runs nvidia-smi); undefined when there is none or it does not answer. */
export async function detectGpu(runner: CommandRunner): Promise<GpuInfo | undefined> {
  const nvidiaSmi = await findNvidiaSmi()
  if (nvidiaSmi === undefined) return undefined
  const r = await runner.run([nvidiaSmi], {allowFailure: true, timeoutSeconds: 30})
  return r.exitCode === 0 ? parseNvidiaSmi(r.stdout) : undefined
}

/**
 * What the running daemon has loaded (docker info, or the Engine API's /info when `api` is given:
 * the same JSON); undefined when it does not answer.
 */
export async function loadedConfig(
  runner: CommandRunner,
  api?: EngineApi
): Promise<LoadedConfig | undefined> {
  if (api) {
    const info = await api.json<unknown>('/info').catch(() => undefined)
    return info === undefined ? undefined : parseLoadedConfig(JSON.stringify(info))
  }
  const r = await runner.run(['docker', 'info', '--format', '{{json .}}'], {
    root: true,
    allowFailure: true,
    timeoutSeconds: 15
  })
  return r.exitCode === 0 ? parseLoadedConfig(r.stdout) : undefined
}

/**
 * Running containers this action did not start (its registries run with --restart always and come
 * back by themselves): the work a restart must not stop.
 */
export async function workloads(runner: CommandRunner, api?: EngineApi): Promise<string[]> {
  if (api) {
    const list =
      await api.json<{Names?: string[]; Labels?: Record<string, string> | null}[]>(
        '/containers/json'
      )
    return (
      (list ?? [])
        .filter(c => c.Labels?.[LABEL_MANAGED] !== 'true')
        // Names holds link aliases too (/other/web): the container's own has one slash.
        .map(c => (c.Names ?? []).find(n => n.lastIndexOf('/') === 0)?.slice(1) ?? '')
        .filter(Boolean)
    )
  }
  const r = await runner.run(
    ['docker', 'ps', '--format', `{{.Names}}\t{{.Label "${LABEL_MANAGED}"}}`],
    {root: true, allowFailure: true, timeoutSeconds: 15}
  )
  return r.stdout
    .split('\n')
    .map(l => l.split('\t'))
    .filter(([name, managed]) => name && managed !== 'true')
    .map(([name]) => name)
}

/** daemon.json parsed, or the reason it cannot be (a malformed file is reported, never overwritten). */
function parseFile(text: string | undefined): Pick<DaemonFacts, 'config' | 'parseError'> {
  if (text === undefined) return {}
  try {
    return {config: parseDaemonConfig(text)}
  } catch (e) {
    if (!(e instanceof DaemonConfigParseError)) throw e
    return {parseError: e}
  }
}

/**
 * Reads daemon.json, the driver, the toolkit packages and what the running daemon loaded; changes
 * nothing. Sets the GPU outputs and nvidia-runtime to what is there now.
 */
export async function detectDaemon(ctx: PhaseContext<DaemonSettings>): Promise<DaemonFacts> {
  const {runner, inputs} = ctx
  const api = await openEngineApi(ctx.host.dockerSocket)
  const wantsGpu = inputs.gpuRuntime !== 'none'
  const gpuLooked = looksForGpu(inputs)
  const [text, gpu, installed, held, running] = await Promise.all([
    readFileMaybe(runner, DAEMON_JSON),
    gpuLooked ? detectGpu(runner) : Promise.resolve(undefined),
    wantsGpu
      ? installedPackages(runner, [...TOOLKIT_PACKAGES, ...LEGACY_PACKAGES])
      : Promise.resolve(new Map<string, string>()),
    wantsGpu ? heldPackages(runner) : Promise.resolve(new Set<string>()),
    loadedConfig(runner, api)
  ])
  const offline = await readOfflineFolder(runner, wantsGpu ? inputs.offlineDebs : undefined)
  const proxy = await detectDaemonProxies(ctx)
  ctx.outputs.daemonConfigChanged = false
  ctx.outputs.daemonChange = 'none'
  ctx.outputs.nvidiaRuntime = running?.runtimes.includes('nvidia') ?? false
  ctx.outputs.gpu = gpu && {
    count: gpu.gpus.length,
    driverVersion: gpu.driverVersion,
    cudaVersion: gpu.cudaVersion
  }
  ctx.show(daemonFacts({...running, gpuLooked, gpu: ctx.outputs.gpu}))
  return {
    text,
    ...parseFile(text),
    gpu,
    installed,
    held,
    loaded: running,
    workloads: running ? await workloads(runner, api) : [],
    snap: await exists('/snap/bin/docker'),
    ...offline,
    proxy,
    devices: wantsGpu ? await detectDeviceFix(runner, ctx.host, running, gpu) : undefined
  }
}
