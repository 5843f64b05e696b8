import * as core from '@actions/core'
import {HostError, tailLines} from '../../errors.js'
import {
  aptInstall,
  aptInstallOffline,
  aptRemove,
  aptUpdate,
  resolvePinned
} from '../../system/apt.js'
import {ensureAptRepo, fetchKey, isArmored} from '../../system/apt-repo.js'
import {exists, removeFile, writeFileAtomic} from '../../system/files.js'
import {
  daemonLogTail,
  detectServiceManager,
  probeDaemon,
  restartDocker,
  type ServiceManager
} from '../../system/service.js'
import type {PhaseContext} from '../pipeline.js'
import {daemonRuntimes} from './detect.js'
import type {DaemonSettings} from './inputs.js'
import {DAEMON_JSON, errorLines, type DaemonAction, type DaemonPlan} from './plan.js'
import {applyProxyAction, verifyDaemonProxies} from './proxies.js'
import {
  NVIDIA_LIST,
  TOOLKIT_PACKAGES,
  nvidiaKeyring,
  nvidiaSourceLine,
  staleNvidiaSources
} from './toolkit.js'

type Ctx = PhaseContext<DaemonSettings>
type WriteConfig = Extract<DaemonAction, {kind: 'write-config'}>

/** Where the file in force before this run's change is kept (restored when the change fails). */
export const DAEMON_JSON_BACKUP = `${DAEMON_JSON}.bak-docker-gpu-setup`

/** NVIDIA's key and flat repository source; stale nvidia-docker/libnvidia-container lists set aside. */
async function addNvidiaRepo(ctx: Ctx, url: string, keySource: string): Promise<void> {
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
async function backup(ctx: Ctx): Promise<boolean> {
  if (!(await exists(DAEMON_JSON))) return false
  await ctx.runner.run(['cp', '-p', '--', DAEMON_JSON, DAEMON_JSON_BACKUP], {root: true})
  return true
}

/** Removes old nvidia-docker2 / nvidia-container-runtime; daemon.json (their conffile) must survive. */
async function removeLegacy(ctx: Ctx, packages: string[]): Promise<void> {
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
async function validate(ctx: Ctx, text: string): Promise<void> {
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
async function announceRestart(ctx: Ctx, reason: string): Promise<void> {
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

/** What this run wrote, so a restart that fails can put the previous file back. */
interface Written {
  action: WriteConfig
  hadBackup: boolean
}

/** Validates, backs up and writes the merged daemon.json (atomically). */
async function writeConfig(ctx: Ctx, action: WriteConfig): Promise<Written> {
  await validate(ctx, action.text)
  const hadBackup = await backup(ctx)
  await writeFileAtomic(ctx.runner, DAEMON_JSON, action.text, 0o644, ctx.host.tempDir)
  ctx.outputs.daemonConfigChanged = true
  core.info(`Wrote ${DAEMON_JSON}:\n  ${action.diff.join('\n  ')}`)
  return {action, hadBackup}
}

/** Never leaves the host without a working daemon: the previous file (or none) back, Docker started again. */
async function rollBack(
  ctx: Ctx,
  manager: ServiceManager,
  written: Written,
  cause: unknown
): Promise<HostError> {
  const {runner} = ctx
  const log = await daemonLogTail(runner, manager)
  if (written.hadBackup) {
    await runner.run(['cp', '-p', '--', DAEMON_JSON_BACKUP, DAEMON_JSON], {root: true})
  } else {
    await removeFile(runner, DAEMON_JSON)
  }
  ctx.outputs.daemonConfigChanged = false
  await restartDocker(runner, manager, ctx.host.tempDir, m => core.info(m))
  return new HostError(
    `Docker did not start with the new ${DAEMON_JSON}; the previous ${written.hadBackup ? 'file is back' : 'state (no file) is back'} and Docker is running again. ` +
      `The change that failed: ${written.action.diff.join('; ')}. Daemon log:\n${errorLines(log)}`,
    {cause}
  )
}

/** Restarts Docker once; when it does not come back with the file this run wrote, rolls back. */
async function restart(ctx: Ctx, reason: string, written: Written | undefined): Promise<void> {
  const manager = await detectServiceManager(ctx.host.systemd)
  await announceRestart(ctx, reason)
  try {
    await restartDocker(ctx.runner, manager, ctx.host.tempDir, m => core.info(m))
  } catch (e) {
    if (!written) throw e
    throw await rollBack(ctx, manager, written, e)
  }
}

/** Installs the toolkit packages, at the pinned version when there is one (checked against apt's lists). */
async function installToolkit(ctx: Ctx, pin: string | undefined): Promise<void> {
  const packages =
    pin === undefined
      ? TOOLKIT_PACKAGES
      : await resolvePinned(ctx.runner, TOOLKIT_PACKAGES, pin, 'nvidia-toolkit-version')
  await aptInstall(ctx.runner, packages)
}

/**
 * Carries out the daemon plan: the NVIDIA toolkit (repository, packages), then the one writer of
 * /etc/docker/daemon.json (validated, backed up, atomic) and one restart, rolled back on failure.
 */
export async function applyDaemon(p: DaemonPlan, ctx: Ctx): Promise<void> {
  let written: Written | undefined
  for (const action of p.actions) {
    switch (action.kind) {
      case 'nvidia-repo':
        await addNvidiaRepo(ctx, action.url, action.key)
        break
      case 'apt-update':
        await aptUpdate(ctx.runner)
        break
      case 'remove-legacy':
        await removeLegacy(ctx, action.packages)
        break
      case 'install-toolkit':
        await installToolkit(ctx, action.pin)
        break
      case 'install-debs':
        await aptInstallOffline(ctx.runner, action.files, ctx.host.tempDir)
        break
      case 'write-config':
        written = await writeConfig(ctx, action)
        break
      case 'write-dropin':
      case 'remove-dropin':
      case 'daemon-reload':
        await applyProxyAction(ctx, action)
        break
      case 'restart':
        await restart(ctx, action.reason, written)
        break
    }
  }
}

/** Proves the daemon loaded what the plan wanted (docker info); sets nvidia-runtime. */
export async function verifyDaemon(p: DaemonPlan, ctx: Ctx): Promise<string> {
  const running = await daemonRuntimes(ctx.runner)
  if (running === undefined) {
    if (await probeDaemon(ctx.runner))
      throw new HostError('docker info did not answer after the change')
    return `${DAEMON_JSON} written; Docker is not running`
  }
  ctx.outputs.nvidiaRuntime = running.runtimes.includes('nvidia')
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
  const proxies = await verifyDaemonProxies(p, ctx)
  return `runtimes: ${running.runtimes.join(', ')} (default ${running.defaultRuntime})${proxies}`
}
