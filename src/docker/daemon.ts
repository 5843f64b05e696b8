import * as core from '@actions/core'
import {HostError, tailLines} from '../errors.js'
import type {Phase, RunContext} from '../pipeline.js'
import {
  aptInstall,
  aptInstallOffline,
  aptRemove,
  aptUpdate,
  installedPackages,
  readOfflineFolder,
  resolvePinned
} from '../system/apt.js'
import {ensureAptRepo, fetchKey, isArmored} from '../system/apt-repo.js'
import {exists, readFileMaybe, removeFile, writeFileAtomic} from '../system/files.js'
import {daemonLogTail, detectServiceManager, probeDaemon, restartDocker} from '../system/service.js'
import {checkImageFor, explainGpuFailure, parseNvidiaSmi, type GpuInfo} from '../nvidia/gpu.js'
import {
  LEGACY_PACKAGES,
  NVIDIA_LIST,
  TOOLKIT_PACKAGES,
  nvidiaKeyring,
  nvidiaSourceLine,
  staleNvidiaSources
} from '../nvidia/toolkit-model.js'
import {DaemonConfigParseError, parseDaemonConfig} from './daemon-config.js'
import {hostIdentity} from '../registry/registry.js'
import {registryFragments} from '../registry/spec.js'
import {
  DAEMON_JSON,
  errorLines,
  planDaemon,
  type DaemonAction,
  type DaemonFacts,
  type DaemonPlan
} from './daemon-plan.js'

/** Where the file in force before this run's change is kept (restored when the change fails). */
export const DAEMON_JSON_BACKUP = `${DAEMON_JSON}.bak-docker-gpu-setup`

/** The driver as nvidia-smi reports it; undefined when there is none (or it does not answer). */
async function detectGpu(ctx: RunContext): Promise<GpuInfo | undefined> {
  if (!(await exists('/usr/bin/nvidia-smi')) && !(await exists('/usr/local/bin/nvidia-smi')))
    return undefined
  const r = await ctx.runner.run(['nvidia-smi'], {allowFailure: true, timeoutSeconds: 30})
  return r.exitCode === 0 ? parseNvidiaSmi(r.stdout) : undefined
}

/** The runtimes the running daemon lists and its default; undefined when it does not answer. */
async function daemonRuntimes(
  ctx: RunContext
): Promise<{runtimes: string[]; defaultRuntime: string} | undefined> {
  const r = await ctx.runner.run(
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

async function detect(ctx: RunContext): Promise<DaemonFacts> {
  const {runner, inputs} = ctx
  const wantsGpu = inputs.gpuRuntime !== 'none'
  const [text, gpu, installed, running] = await Promise.all([
    readFileMaybe(runner, DAEMON_JSON),
    wantsGpu || inputs.gpuCheck === 'true' ? detectGpu(ctx) : Promise.resolve(undefined),
    wantsGpu
      ? installedPackages(runner, [...TOOLKIT_PACKAGES, ...LEGACY_PACKAGES])
      : Promise.resolve(new Map<string, string>()),
    daemonRuntimes(ctx)
  ])
  let config: DaemonFacts['config']
  let parseError: DaemonConfigParseError | undefined
  if (text !== undefined) {
    try {
      config = parseDaemonConfig(text)
    } catch (e) {
      if (!(e instanceof DaemonConfigParseError)) throw e
      parseError = e
    }
  }
  const offline = await readOfflineFolder(runner, wantsGpu ? inputs.offlineDebs : undefined)
  ctx.outputs['daemon-config-changed'] = 'false'
  ctx.outputs['nvidia-runtime'] = String(running?.runtimes.includes('nvidia') ?? false)
  ctx.outputs['gpu-count'] = gpu ? String(gpu.gpus.length) : ''
  ctx.outputs['driver-version'] = gpu?.driverVersion ?? ''
  ctx.outputs['cuda-version'] = gpu?.cudaVersion ?? ''
  return {
    text,
    config,
    parseError,
    gpu,
    installed,
    runtimes: running?.runtimes,
    defaultRuntime: running?.defaultRuntime,
    ...offline
  }
}

function plan(facts: DaemonFacts, ctx: RunContext): DaemonPlan {
  const p = planDaemon(facts, ctx.inputs, registryFragments(ctx.inputs, hostIdentity()))
  for (const w of p.warnings) ctx.warn(w)
  if (p.diff.length > 0) core.info(`${DAEMON_JSON} would change:\n  ${p.diff.join('\n  ')}`)
  return p
}

/** NVIDIA's key and flat repository source; stale nvidia-docker/libnvidia-container lists set aside. */
async function addNvidiaRepo(ctx: RunContext, url: string, keySource: string): Promise<void> {
  const key = await fetchKey(keySource)
  const keyring = nvidiaKeyring(isArmored(key))
  await ensureAptRepo(
    ctx.runner,
    {
      keySource,
      key,
      keyring,
      listPath: NVIDIA_LIST,
      line: nvidiaSourceLine(url, keyring),
      stale: files => staleNvidiaSources(files, url),
      what: "NVIDIA's toolkit repository"
    },
    ctx.host.tempDir
  )
}

/** Copies daemon.json aside (as root where needed), so a failed change can be undone. */
async function backup(ctx: RunContext): Promise<boolean> {
  if (!(await exists(DAEMON_JSON))) return false
  await ctx.runner.run(['cp', '-p', '--', DAEMON_JSON, DAEMON_JSON_BACKUP], {root: true})
  return true
}

/** Removes old nvidia-docker2 / nvidia-container-runtime; daemon.json (their conffile) must survive. */
async function removeLegacy(ctx: RunContext, packages: string[]): Promise<void> {
  const had = await backup(ctx)
  await aptRemove(ctx.runner, packages)
  if (had && !(await exists(DAEMON_JSON))) {
    await ctx.runner.run(['cp', '-p', '--', DAEMON_JSON_BACKUP, DAEMON_JSON], {root: true})
    ctx.warn(
      `Removing ${packages.join(', ')} took ${DAEMON_JSON} with it; it was restored from the backup.`
    )
  }
}

/** dockerd 23+ can check a config file without starting; older ones cannot (detected, not assumed). */
async function validate(ctx: RunContext, text: string): Promise<void> {
  const help = await ctx.runner.run(['dockerd', '--help'], {root: true, allowFailure: true})
  if (!help.stdout.includes('--validate')) return
  const candidate = `${DAEMON_JSON}.candidate-docker-gpu-setup`
  await writeFileAtomic(ctx.runner, candidate, text, 0o644, ctx.host.tempDir)
  try {
    const r = await ctx.runner.run(['dockerd', '--validate', '--config-file', candidate], {
      root: true,
      allowFailure: true
    })
    if (r.exitCode !== 0) {
      throw new HostError(
        `dockerd refuses the merged ${DAEMON_JSON} (nothing was changed): ${tailLines(r.stderr || r.stdout, 5)}`
      )
    }
  } finally {
    await removeFile(ctx.runner, candidate)
  }
}

/** Lists running containers before a restart stops them (other jobs' too, without live-restore). */
async function announceRestart(ctx: RunContext, reason: string): Promise<void> {
  const r = await ctx.runner.run(['docker', 'ps', '--format', '{{.Names}} ({{.Image}})'], {
    root: true,
    allowFailure: true,
    timeoutSeconds: 15
  })
  const running = r.stdout.trim().split('\n').filter(Boolean)
  core.info(
    `Restarting Docker: ${reason}.` +
      (running.length > 0
        ? ` Running containers stop (those with a restart policy come back): ${running.join(', ')}`
        : ' No containers are running.')
  )
}

async function apply(p: DaemonPlan, ctx: RunContext): Promise<void> {
  const {runner} = ctx
  let written: Extract<DaemonAction, {kind: 'write-config'}> | undefined
  let hadBackup = false
  for (const action of p.actions) {
    switch (action.kind) {
      case 'nvidia-repo':
        await addNvidiaRepo(ctx, action.url, action.key)
        break
      case 'apt-update':
        await aptUpdate(runner)
        break
      case 'remove-legacy':
        await removeLegacy(ctx, action.packages)
        break
      case 'install-toolkit':
        await aptInstall(
          runner,
          action.pin === undefined
            ? TOOLKIT_PACKAGES
            : await resolvePinned(runner, TOOLKIT_PACKAGES, action.pin, 'nvidia-toolkit-version')
        )
        break
      case 'install-debs':
        await aptInstallOffline(runner, action.files, ctx.host.tempDir)
        break
      case 'write-config':
        await validate(ctx, action.text)
        hadBackup = await backup(ctx)
        await writeFileAtomic(runner, DAEMON_JSON, action.text, 0o644, ctx.host.tempDir)
        written = action
        ctx.outputs['daemon-config-changed'] = 'true'
        core.info(`Wrote ${DAEMON_JSON}:\n  ${action.diff.join('\n  ')}`)
        break
      case 'restart': {
        const manager = await detectServiceManager(ctx.host.systemd)
        await announceRestart(ctx, action.reason)
        try {
          await restartDocker(runner, manager, ctx.host.tempDir, m => core.info(m))
        } catch (e) {
          if (!written) throw e
          // Never leave the host without a working daemon: put the old file back and start again.
          const log = await daemonLogTail(runner, manager)
          if (hadBackup) {
            await runner.run(['cp', '-p', '--', DAEMON_JSON_BACKUP, DAEMON_JSON], {root: true})
          } else {
            await removeFile(runner, DAEMON_JSON)
          }
          ctx.outputs['daemon-config-changed'] = 'false'
          await restartDocker(runner, manager, ctx.host.tempDir, m => core.info(m))
          throw new HostError(
            `Docker did not start with the new ${DAEMON_JSON}; the previous ${hadBackup ? 'file is back' : 'state (no file) is back'} and Docker is running again. ` +
              `The change that failed: ${written.diff.join('; ')}. Daemon log:\n${errorLines(log)}`,
            {cause: e}
          )
        }
        break
      }
    }
  }
}

async function verify(p: DaemonPlan, ctx: RunContext): Promise<string> {
  const running = await daemonRuntimes(ctx)
  if (running === undefined) {
    if (await probeDaemon(ctx.runner))
      throw new HostError('docker info did not answer after the change')
    return `${DAEMON_JSON} written; Docker is not running`
  }
  ctx.outputs['nvidia-runtime'] = String(running.runtimes.includes('nvidia'))
  if (p.nvidia && !running.runtimes.includes('nvidia')) {
    throw new HostError(
      `Docker does not list the nvidia runtime after the change (runtimes: ${running.runtimes.join(', ')})`
    )
  }
  if (p.nvidia && ctx.inputs.nvidiaDefaultRuntime && running.defaultRuntime !== 'nvidia') {
    throw new HostError(
      `Docker's default runtime is ${running.defaultRuntime}, not nvidia, after the change`
    )
  }
  return `runtimes: ${running.runtimes.join(', ')} (default ${running.defaultRuntime})`
}

/**
 * The GPU check: nvidia-smi on the host, then `docker run --gpus all IMAGE nvidia-smi`. With
 * gpu-check: auto it runs when a driver is present and this phase changed something (a rerun on a
 * ready host starts no container); with true, on every run.
 */
async function check(_plan: DaemonPlan, ctx: RunContext, changed: boolean): Promise<void> {
  const {inputs, runner} = ctx
  const gpu = await detectGpu(ctx)
  const wanted =
    inputs.gpuCheck === 'true' || (inputs.gpuCheck === 'auto' && gpu !== undefined && changed)
  if (!wanted) return
  if (!gpu) {
    throw new HostError(
      'gpu-check is true but no NVIDIA driver answers on this host (nvidia-smi failed or is missing).'
    )
  }
  const image = inputs.gpuCheckImage ?? checkImageFor(gpu.cudaVersion)
  if (image === undefined) {
    throw new HostError(
      `No CUDA check image fits driver ${gpu.driverVersion} (CUDA ${gpu.cudaVersion ?? 'unknown'}): set gpu-check-image.`
    )
  }
  if (inputs.offlineDebs !== undefined) {
    const has = await runner.run(['docker', 'image', 'inspect', image], {
      root: true,
      allowFailure: true
    })
    if (has.exitCode !== 0) {
      throw new HostError(
        `gpu-check-image ${image} is not on this host and offline-debs means nothing is pulled: load it first (docker load).`
      )
    }
  }
  const r = await runner.run(
    ['docker', 'run', '--rm', '--gpus', 'all', image, 'nvidia-smi', '-L'],
    {
      root: true,
      allowFailure: true,
      timeoutSeconds: 600
    }
  )
  if (r.exitCode !== 0) {
    const out = `${r.stderr}\n${r.stdout}`
    const fix = explainGpuFailure(out)
    throw new HostError(
      `The GPU check container failed: ${tailLines(out, 5)}${fix ? `\nFix: ${fix}` : ''}`
    )
  }
  const seen = r.stdout.split('\n').filter(l => l.startsWith('GPU ')).length
  core.info(`GPU check: a container (${image}) sees ${seen} GPU(s):\n${r.stdout.trim()}`)
  if (seen < gpu.gpus.length) {
    ctx.warn(`The GPU check container sees ${seen} of the host's ${gpu.gpus.length} GPUs.`)
  }
}

/**
 * Daemon config phase: the NVIDIA toolkit when the runtime is wanted, then the one writer of
 * /etc/docker/daemon.json (merged fragments, validated, backed up), one restart, rollback on failure.
 */
export const daemonPhase: Phase<DaemonFacts, DaemonPlan> = {
  name: 'Daemon config and NVIDIA runtime',
  detect,
  plan,
  apply,
  verify,
  check
}
