import {installedPackages, readOfflineFolder} from '../../system/apt.js'
import {exists, readFileMaybe} from '../../system/files.js'
import type {CommandRunner} from '../../exec/runner.js'
import type {PhaseContext} from '../pipeline.js'
import {DaemonConfigParseError, parseDaemonConfig} from './daemon-config.js'
import {parseNvidiaSmi, type GpuInfo} from './gpu.js'
import type {DaemonSettings} from './inputs.js'
import {DAEMON_JSON, type DaemonFacts} from './plan.js'
import {detectDaemonProxies} from './proxies.js'
import {LEGACY_PACKAGES, TOOLKIT_PACKAGES} from './toolkit.js'

/** The driver as nvidia-smi reports it (runs nvidia-smi); undefined when there is none or it does not answer. */
export async function detectGpu(runner: CommandRunner): Promise<GpuInfo | undefined> {
  if (!(await exists('/usr/bin/nvidia-smi')) && !(await exists('/usr/local/bin/nvidia-smi')))
    return undefined
  const r = await runner.run(['nvidia-smi'], {allowFailure: true, timeoutSeconds: 30})
  return r.exitCode === 0 ? parseNvidiaSmi(r.stdout) : undefined
}

/** The runtimes the running daemon lists and its default (docker info); undefined when it does not answer. */
export async function daemonRuntimes(
  runner: CommandRunner
): Promise<{runtimes: string[]; defaultRuntime: string} | undefined> {
  const r = await runner.run(
    ['docker', 'info', '--format', '{{json .Runtimes}}\t{{.DefaultRuntime}}'],
    {root: true, allowFailure: true, timeoutSeconds: 15}
  )
  if (r.exitCode !== 0) return undefined
  const [runtimes, defaultRuntime] = r.stdout.trim().split('\t')
  try {
    return {runtimes: Object.keys(JSON.parse(runtimes) as object), defaultRuntime}
  } catch {
    return undefined
  }
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
  const wantsGpu = inputs.gpuRuntime !== 'none'
  const [text, gpu, installed, running] = await Promise.all([
    readFileMaybe(runner, DAEMON_JSON),
    wantsGpu || inputs.gpuCheck === 'true' ? detectGpu(runner) : Promise.resolve(undefined),
    wantsGpu
      ? installedPackages(runner, [...TOOLKIT_PACKAGES, ...LEGACY_PACKAGES])
      : Promise.resolve(new Map<string, string>()),
    daemonRuntimes(runner)
  ])
  const offline = await readOfflineFolder(runner, wantsGpu ? inputs.offlineDebs : undefined)
  const proxy = await detectDaemonProxies(ctx)
  ctx.outputs.daemonConfigChanged = false
  ctx.outputs.nvidiaRuntime = running?.runtimes.includes('nvidia') ?? false
  ctx.outputs.gpu = gpu && {
    count: gpu.gpus.length,
    driverVersion: gpu.driverVersion,
    cudaVersion: gpu.cudaVersion
  }
  return {
    text,
    ...parseFile(text),
    gpu,
    installed,
    runtimes: running?.runtimes,
    defaultRuntime: running?.defaultRuntime,
    ...offline,
    proxy
  }
}
