/** The daemon phase's effects: the NVIDIA toolkit (repository, packages), then daemon.json written (validated, backed up, atomic), one reload or restart, rollback; and its verification. */
import * as core from '@actions/core'
import {HostError, tailLines} from '../../errors.js'
import {
  aptInstall,
  aptInstallOffline,
  aptMark,
  aptRemove,
  aptUpdate,
  installedPackages,
  resolvePinned
} from '../../system/apt.js'
import {ensureAptRepo, fetchKey, isArmored} from '../../system/apt-repo.js'
import {exists, readFileMaybe, removeFile, writeFileAtomic} from '../../system/files.js'
import {createHash} from 'node:crypto'
import {
  CDI_RECORD,
  CDI_SPEC,
  DEV_CHAR_RULE,
  cdiRecordText,
  type DeviceFixAction
} from './device-fix.js'
import {NVIDIA_CTK} from '../../models/device-loss.js'
import {probeDaemon} from '../../system/service.js'
import type {PhaseContext} from '../pipeline.js'
import {
  DAEMON_JSON_BACKUP,
  activate,
  backupConfig,
  putConfig,
  written as writtenBy,
  type ActivationReport,
  type Written
} from './activate.js'
import {loadedConfig} from './detect.js'
import {daemonFacts, looksForGpu} from './facts.js'
import type {DaemonSettings} from './inputs.js'
import {DAEMON_JSON, type DaemonAction, type DaemonPlan} from './plan.js'
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

/** Removes old nvidia-docker2 / nvidia-container-runtime; daemon.json (their conffile) must survive. */
async function removeLegacy(ctx: Ctx, packages: string[]): Promise<void> {
  const had = await backupConfig(ctx)
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
  // 0600: it may hold a proxy password, and it is removed right after the check.
  await writeFileAtomic(ctx.runner, candidate, text, 0o600, ctx.host.tempDir)
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

/** Validates, backs up and writes the merged daemon.json (atomically). */
async function writeConfig(ctx: Ctx, action: WriteConfig): Promise<Written> {
  await validate(ctx, action.text)
  const hadBackup = await backupConfig(ctx)
  await putConfig(ctx, action.text)
  ctx.outputs.daemonConfigChanged = true
  core.info(`Wrote ${DAEMON_JSON}:\n  ${action.diff.join('\n  ')}`)
  return writtenBy(action, hadBackup)
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
 * One change of the GPU device fix. The spec is generated where NVIDIA's install guide puts it
 * (`nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`), then recorded with the driver and the
 * toolkit it was generated for (and removed with its record where the toolkit keeps its own); the
 * links are made as the troubleshooting page says
 * (`nvidia-ctk system create-dev-char-symlinks --create-all`), and its udev rule written.
 */
async function applyDeviceFix(ctx: Ctx, action: DeviceFixAction): Promise<void> {
  const run = async (args: string[]) => {
    const r = await ctx.runner.run([NVIDIA_CTK, ...args], {root: true, allowFailure: true})
    if (r.exitCode !== 0) {
      throw new HostError(
        `${NVIDIA_CTK} ${args.join(' ')} failed (exit ${r.exitCode}): ${tailLines(r.stderr || r.stdout, 3)}`
      )
    }
  }
  switch (action.kind) {
    case 'cdi-spec': {
      await run(['cdi', 'generate', `--output=${CDI_SPEC}`])
      const [spec, toolkit] = await Promise.all([
        readFileMaybe(ctx.runner, CDI_SPEC),
        installedPackages(ctx.runner, ['nvidia-container-toolkit'])
      ])
      if (spec === undefined) throw new HostError(`nvidia-ctk cdi generate wrote no ${CDI_SPEC}`)
      const record = {
        driver: action.driver,
        toolkit: toolkit.get('nvidia-container-toolkit') ?? '',
        sha256: createHash('sha256').update(spec).digest('hex')
      }
      await writeFileAtomic(ctx.runner, CDI_RECORD, cdiRecordText(record), 0o644, ctx.host.tempDir)
      core.info(`Generated ${CDI_SPEC} for driver ${record.driver}, toolkit ${record.toolkit}`)
      break
    }
    case 'cdi-spec-remove':
      await removeFile(ctx.runner, CDI_SPEC)
      await removeFile(ctx.runner, CDI_RECORD)
      core.info(`Removed ${CDI_SPEC}: the toolkit keeps its own spec (nvidia-cdi-refresh)`)
      break
    case 'dev-char-rule':
      await writeFileAtomic(ctx.runner, DEV_CHAR_RULE, action.text, 0o644, ctx.host.tempDir)
      break
    case 'dev-char-links':
      await run(['system', 'create-dev-char-symlinks', '--create-all'])
      break
  }
}

/** How each applied plan's change reached the daemon (read back when verifying). */
const reports = new WeakMap<DaemonPlan, ActivationReport>()

/**
 * Carries out the daemon plan: the NVIDIA toolkit (repository, packages), then the one writer of
 * /etc/docker/daemon.json (validated, backed up, atomic), applied by one reload or one restart
 * (running containers kept by live-restore), rolled back on failure.
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
      case 'hold':
        await aptMark(ctx.runner, 'hold', action.packages)
        break
      case 'cdi-spec':
      case 'cdi-spec-remove':
      case 'dev-char-rule':
      case 'dev-char-links':
        await applyDeviceFix(ctx, action)
        break
      case 'write-config':
        written = await writeConfig(ctx, action)
        break
      case 'write-dropin':
      case 'remove-dropin':
      case 'daemon-reload':
        await applyProxyAction(ctx, action)
        break
      case 'reload':
      case 'restart': {
        const report = await activate(ctx, action, written)
        ctx.outputs.daemonChange = report.how
        reports.set(p, report)
        break
      }
    }
  }
}

/** Proves the daemon loaded what the plan wanted (docker info); sets nvidia-runtime. */
export async function verifyDaemon(p: DaemonPlan, ctx: Ctx): Promise<string> {
  const running = await loadedConfig(ctx.runner)
  ctx.show(
    daemonFacts({
      ...running,
      gpuLooked: looksForGpu(ctx.inputs),
      gpu: ctx.outputs.gpu,
      change: reports.get(p),
      deviceFix: p.deviceFix
    })
  )
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
