/**
 * Makes the running daemon take daemon.json, stopping as little as possible: a reload (SIGHUP)
 * where dockerd applies every changed key in place, else a restart during which live-restore keeps
 * running containers alive; a change that fails is rolled back.
 */
import {promises as fs} from 'node:fs'
import * as core from '@actions/core'
import type {JsonObject} from '../../docker/daemon-fragment.js'
import {HostError, errorMessage} from '../../errors.js'
import {exists, readFileMaybe, removeFile, setMode, writeFileAtomic} from '../../system/files.js'
import {
  daemonLogTail,
  detectServiceManager,
  reloadDocker,
  restartDocker,
  type ServiceManager
} from '../../system/service.js'
import type {PhaseContext} from '../pipeline.js'
import {holdsSecret, parseDaemonConfig, serialiseDaemonConfig} from './daemon-config.js'
import {loadedConfig} from './detect.js'
import type {DaemonSettings} from './inputs.js'
import {DAEMON_JSON, errorLines, type Activation, type DaemonAction} from './plan.js'
import {notTaken} from './reload.js'

type Ctx = PhaseContext<DaemonSettings>
type WriteConfig = Extract<DaemonAction, {kind: 'write-config'}>

/** Where the file in force before this run's change is kept (restored when the change fails). */
export const DAEMON_JSON_BACKUP = `${DAEMON_JSON}.bak-docker-gpu-setup`

/**
 * The file this run leaves in place, and whether a backup of the one before exists: what a change
 * that fails puts back. `text` undefined: the run wrote nothing, the file stays as it was.
 */
export interface Written {
  text?: string
  hadBackup: boolean
  /** What the change was, for error messages. */
  diff: string[]
}

/** A written config, as apply records it. */
export function written(action: WriteConfig, hadBackup: boolean): Written {
  return {text: action.text, hadBackup, diff: action.diff}
}

/** How the change reached the daemon, for the log and the summary. */
export interface ActivationReport {
  how: 'reload' | 'restart' | 'start'
  /** Keys only a start applies (empty for a reload, or a start of a stopped daemon). */
  restartKeys: string[]
  /** How long the Docker API did not answer, in seconds (0 when every probe answered). */
  downtime: number
  /** Seconds from the reload or restart until `docker info` showed the change. */
  applied: number
  /** Running containers live-restore kept alive across a restart. */
  protectedContainers: string[]
}

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))

/**
 * Polls `docker info` until the daemon shows `keys` of `config`; returns those it has not, and
 * how long `docker info` did not answer meanwhile.
 */
async function waitTaken(
  ctx: Ctx,
  config: JsonObject,
  keys: readonly string[],
  deadlineMs = 15_000
): Promise<{missing: string[]; unanswered: number}> {
  const end = Date.now() + deadlineMs
  let unanswered = 0
  for (;;) {
    const asked = Date.now()
    const loaded = await loadedConfig(ctx.runner)
    if (!loaded) unanswered += Date.now() - asked
    const missing = loaded ? notTaken(config, loaded, keys) : [...keys]
    if (missing.length === 0 || Date.now() > end) return {missing, unanswered: unanswered / 1000}
    await sleep(200)
  }
}

/** The lines of dockerd's log since `since` that say it refused to (re)load its configuration. */
async function refusal(ctx: Ctx, manager: ServiceManager, since: number): Promise<string> {
  const log = await daemonLogTail(ctx.runner, manager, since)
  const lines = log
    .split('\n')
    .filter(l => /unable to configure|reload|reconfigur|invalid|unknown/i.test(l))
    .filter(l => /level=(error|fatal|warning)|error|fail|unable/i.test(l))
  return lines.slice(-3).join('\n')
}

/**
 * daemon.json's mode for `text`: 0600 while it holds a proxy password (dockerd reads it as root),
 * else the mode the file has now (the owner's choice), 0644 for a new file.
 */
export async function configMode(text: string): Promise<number> {
  if (holdsSecret(text)) return 0o600
  return fs.stat(DAEMON_JSON).then(
    s => s.mode & 0o7777,
    () => 0o644
  )
}

/** Writes daemon.json whole (atomically), in the mode configMode gives it. */
export async function putConfig(ctx: Ctx, text: string): Promise<void> {
  await writeFileAtomic(ctx.runner, DAEMON_JSON, text, await configMode(text), ctx.host.tempDir)
}

/**
 * Closes daemon.json and its backup to everyone but root when they hold a proxy password but
 * others may read them (as releases before this rule left them). Runs whether or not the phase
 * changed anything: a stat of each, a read only of a file others may read.
 */
export async function closeSecrets(ctx: Ctx): Promise<void> {
  for (const file of [DAEMON_JSON, DAEMON_JSON_BACKUP]) {
    const open = await fs.stat(file).then(
      s => (s.mode & 0o077) !== 0,
      () => false
    )
    if (open && holdsSecret((await readFileMaybe(ctx.runner, file)) ?? '')) {
      await setMode(ctx.runner, file, 0o600)
      core.info(`${file} holds a proxy password: now readable by root alone (0600).`)
    }
  }
}

/**
 * Copies daemon.json aside as it is (mode too), so a failed change can be undone; a copy that
 * holds a proxy password is closed to everyone but root. False when there is no file.
 */
export async function backupConfig(ctx: Ctx): Promise<boolean> {
  if (!(await exists(DAEMON_JSON))) return false
  await ctx.runner.run(['cp', '-p', '--', DAEMON_JSON, DAEMON_JSON_BACKUP], {root: true})
  if (holdsSecret((await readFileMaybe(ctx.runner, DAEMON_JSON_BACKUP)) ?? '')) {
    await setMode(ctx.runner, DAEMON_JSON_BACKUP, 0o600)
  }
  return true
}

/** The previous file back (or none, when there was none). */
async function restorePrevious(ctx: Ctx, w: Written): Promise<void> {
  if (w.hadBackup) {
    await ctx.runner.run(['cp', '-p', '--', DAEMON_JSON_BACKUP, DAEMON_JSON], {root: true})
  } else {
    await removeFile(ctx.runner, DAEMON_JSON)
  }
  ctx.outputs.daemonConfigChanged = false
}

/** The file as this run leaves it: what it wrote, or (when it wrote nothing) the previous one. */
async function restoreFinal(ctx: Ctx, w: Written): Promise<void> {
  if (w.text === undefined) await restorePrevious(ctx, w)
  else await putConfig(ctx, w.text)
}

/** The config in force before this run (the backup), as an object. */
async function previousConfig(ctx: Ctx, w: Written): Promise<JsonObject> {
  if (!w.hadBackup) return {}
  return parseDaemonConfig((await readFileMaybe(ctx.runner, DAEMON_JSON_BACKUP)) ?? '{}')
}

/**
 * A restart with nothing written this run (proxies in a drop-in, a daemon that never read the
 * file) still changes the file while it protects containers: keep a copy to put back.
 */
async function snapshot(ctx: Ctx): Promise<Written> {
  return {hadBackup: await backupConfig(ctx), diff: []}
}

/** Sends the reload; when dockerd cannot be told (no unit reload, no pid), the file goes back. */
async function signalReload(
  ctx: Ctx,
  manager: ServiceManager,
  w: Written | undefined
): Promise<void> {
  try {
    await reloadDocker(ctx.runner, manager)
  } catch (e) {
    if (w) await restorePrevious(ctx, w)
    throw new HostError(
      `Could not ask Docker to reload ${DAEMON_JSON} (${errorMessage(e)}); ${w ? 'the previous file is back, ' : ''}nothing was restarted.`,
      {cause: e}
    )
  }
}

/** Reloads and proves the keys took; a refused reload puts the previous file back and reloads it. */
async function reload(
  ctx: Ctx,
  manager: ServiceManager,
  action: Activation,
  w: Written | undefined
): Promise<{missing: string[]; downtime: number; applied: number}> {
  const started = Date.now()
  await signalReload(ctx, manager, w)
  const {missing, unanswered} = await waitTaken(ctx, action.config, action.reload)
  const applied = (Date.now() - started) / 1000
  if (missing.length === 0) return {missing, downtime: unanswered, applied}
  const refused = await refusal(ctx, manager, started)
  if (refused !== '' && w) {
    await restorePrevious(ctx, w)
    await reloadDocker(ctx.runner, manager)
    throw new HostError(
      `Docker refused to reload the new ${DAEMON_JSON}; the previous ${w.hadBackup ? 'file is back' : 'state (no file) is back'} and reloaded, nothing was restarted. The change that failed: ${w.diff.join('; ')}. Daemon log:\n${refused}`
    )
  }
  return {missing, downtime: unanswered, applied}
}

/**
 * Turns live-restore on by reload (the file with it forced on), so the restart that follows
 * keeps containers running. False when this engine did not turn it on (the file is put back).
 */
async function liveRestoreOn(
  ctx: Ctx,
  manager: ServiceManager,
  text: string,
  w: Written
): Promise<boolean> {
  await putConfig(ctx, text)
  await signalReload(ctx, manager, w)
  // dockerd handles SIGHUP at once: a few seconds tell an engine that ignores it.
  const {missing} = await waitTaken(ctx, {'live-restore': true}, ['live-restore'], 5000)
  if (missing.length === 0) return true
  await restoreFinal(ctx, w)
  await reloadDocker(ctx.runner, manager)
  return false
}

/**
 * Puts live-restore back as the file this run leaves has it. A reload keeps the value of a key the
 * file does not set, so "not set" is applied as an explicit false first, then the file is written
 * as meant (the daemon already runs it that way; its next start reads the same).
 */
async function liveRestoreBack(
  ctx: Ctx,
  manager: ServiceManager,
  config: JsonObject,
  w: Written
): Promise<void> {
  const wanted = config['live-restore']
  await putConfig(ctx, serialiseDaemonConfig({...config, 'live-restore': wanted === true}))
  await reloadDocker(ctx.runner, manager)
  const {missing} = await waitTaken(ctx, {'live-restore': wanted === true}, ['live-restore'])
  await restoreFinal(ctx, w)
  if (missing.length > 0) {
    ctx.warn(
      `live-restore did not go back to ${String(wanted === true)} by reload; it stays on until Docker restarts.`
    )
  }
}

/**
 * A restart that fails is undone: the previous file back and Docker started again. While
 * containers are protected, that start keeps live-restore on (a daemon starting without it stops
 * the containers it finds), then live-restore goes back as the previous file has it.
 */
async function rollBack(
  ctx: Ctx,
  manager: ServiceManager,
  w: Written,
  protecting: boolean,
  cause: unknown
): Promise<HostError> {
  const log = await daemonLogTail(ctx.runner, manager)
  const previous = await previousConfig(ctx, w)
  if (protecting) await putConfig(ctx, serialiseDaemonConfig({...previous, 'live-restore': true}))
  else await restorePrevious(ctx, w)
  await restartDocker(ctx.runner, manager, ctx.host.tempDir, m => core.info(m))
  if (protecting) await liveRestoreBack(ctx, manager, previous, {...w, text: undefined})
  ctx.outputs.daemonConfigChanged = false
  return new HostError(
    `Docker did not start with the new ${DAEMON_JSON}; the previous ${w.hadBackup ? 'file is back' : 'state (no file) is back'} and Docker is running again. ` +
      `The change that failed: ${w.diff.join('; ') || '(the restart itself)'}. Daemon log:\n${errorLines(log)}`,
    {cause}
  )
}

/** What the log says before a restart: which containers keep running, and which stop. */
function announce(
  action: Activation,
  reason: string,
  protecting: boolean,
  liveRestore: boolean
): void {
  const names = action.workloads.join(', ')
  core.info(
    `Restarting Docker: ${reason}.` +
      (action.workloads.length === 0
        ? ' No container of anyone else is running.'
        : protecting || liveRestore
          ? ` live-restore keeps these running: ${names}.`
          : ` These stop (those with a restart policy come back): ${names}.`)
  )
}

/** Restarts Docker, protected by live-restore when the plan says so; rolls back when it fails. */
async function restart(
  ctx: Ctx,
  manager: ServiceManager,
  action: Activation,
  w: Written | undefined,
  reason: string
): Promise<ActivationReport> {
  const exposed = action.workloads.length > 0 && !action.liveRestore
  if (action.unprotectable && exposed && !ctx.inputs.allowRestart) {
    if (w) await restorePrevious(ctx, w)
    if (w) await reloadDocker(ctx.runner, manager)
    throw new HostError(
      `${reason}, and live-restore cannot keep running containers alive here (swarm mode): ${action.workloads.join(', ')}. ${w ? `The previous ${DAEMON_JSON} is back; n` : 'N'}othing was restarted. Set allow-restart: true to restart anyway.`
    )
  }
  const kept = w ?? (action.protect ? await snapshot(ctx) : undefined)
  let protecting = action.protect !== undefined && kept !== undefined
  if (
    protecting &&
    action.protect &&
    kept &&
    !(await liveRestoreOn(ctx, manager, action.protect.text, kept))
  ) {
    if (!ctx.inputs.allowRestart) {
      throw new HostError(
        `This Docker did not turn live-restore on, so a restart would stop running containers (${action.workloads.join(', ')}). Nothing was restarted; ${DAEMON_JSON} is as it was before the restart was needed. Set allow-restart: true to restart anyway, or make the change when they are done.`
      )
    }
    ctx.warn(
      `live-restore could not be turned on: restarting anyway (allow-restart), ${action.workloads.join(', ')} stop.`
    )
    protecting = false
  }
  announce(action, reason, protecting, action.liveRestore)
  const started = Date.now()
  try {
    await restartDocker(ctx.runner, manager, ctx.host.tempDir, m => core.info(m))
  } catch (e) {
    if (!kept) throw e
    throw await rollBack(ctx, manager, kept, protecting, e)
  }
  const downtime = (Date.now() - started) / 1000
  if (protecting && kept) await liveRestoreBack(ctx, manager, action.config, kept)
  return {
    how: action.loaded ? 'restart' : 'start',
    restartKeys: action.restart,
    downtime,
    applied: (Date.now() - started) / 1000,
    protectedContainers: protecting || action.liveRestore ? action.workloads : []
  }
}

/**
 * Carries out a reload or restart action: reload where the plan says dockerd applies every
 * changed key in place (a reload that does not take becomes a restart), restart otherwise.
 * Touches the docker service and, while protecting containers, daemon.json's live-restore.
 */
export async function activate(
  ctx: Ctx,
  action: Extract<DaemonAction, {kind: 'reload' | 'restart'}>,
  w: Written | undefined
): Promise<ActivationReport> {
  const manager = await detectServiceManager(ctx.host.systemd)
  if (action.kind === 'restart') return restart(ctx, manager, action, w, action.reason)
  const {missing, downtime, applied} = await reload(ctx, manager, action, w)
  if (missing.length === 0) {
    core.info(
      `Reloaded Docker: ${action.reload.join(', ')} applied by the same daemon in ${applied.toFixed(2)} s; the API ${downtime === 0 ? 'answered throughout' : `did not answer for ${downtime.toFixed(2)} s`}, no container was touched.`
    )
    return {how: 'reload', restartKeys: [], downtime, applied, protectedContainers: []}
  }
  const reason = `the reload did not apply ${missing.join(', ')}`
  core.info(`${reason}: restarting instead.`)
  return restart(ctx, manager, {...action, restart: missing}, w, reason)
}
