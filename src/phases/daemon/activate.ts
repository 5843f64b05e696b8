/**
 * Makes the running daemon take the daemon.json this run wrote, stopping as little as possible: a
 * reload (SIGHUP) where dockerd applies every changed key in place, else a restart during which
 * live-restore keeps running containers alive; a failed change is rolled back.
 */
import * as core from '@actions/core'
import {HostError} from '../../errors.js'
import {readFileMaybe, removeFile, writeFileAtomic} from '../../system/files.js'
import {
  daemonLogTail,
  detectServiceManager,
  reloadDocker,
  restartDocker,
  type ServiceManager
} from '../../system/service.js'
import type {PhaseContext} from '../pipeline.js'
import type {JsonObject} from '../../docker/daemon-fragment.js'
import {parseDaemonConfig, serialiseDaemonConfig} from './daemon-config.js'
import {loadedConfig} from './detect.js'
import type {DaemonSettings} from './inputs.js'
import {DAEMON_JSON, errorLines, type Activation, type DaemonAction} from './plan.js'
import {notTaken} from './reload.js'

type Ctx = PhaseContext<DaemonSettings>
type WriteConfig = Extract<DaemonAction, {kind: 'write-config'}>

/** Where the file in force before this run's change is kept (restored when the change fails). */
export const DAEMON_JSON_BACKUP = `${DAEMON_JSON}.bak-docker-gpu-setup`

/** What this run wrote, so a change that fails can put the previous file back. */
export interface Written {
  action: WriteConfig
  hadBackup: boolean
}

/** How the change reached the daemon, for the log and the summary. */
export interface ActivationReport {
  how: 'reload' | 'restart'
  /** Keys only a start applies (empty for a reload, or a start of a stopped daemon). */
  restartKeys: string[]
  /** How long the Docker API did not answer, in seconds. */
  downtime: number
  /** Running containers live-restore kept alive across a restart. */
  protectedContainers: string[]
}

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))

/** Polls `docker info` until the daemon shows `keys` of `config` taken; returns those it has not. */
async function waitTaken(
  ctx: Ctx,
  config: Activation['config'],
  keys: readonly string[],
  deadlineMs = 15_000
): Promise<string[]> {
  const end = Date.now() + deadlineMs
  for (;;) {
    const loaded = await loadedConfig(ctx.runner)
    const missing = loaded ? notTaken(config, loaded, keys) : [...keys]
    if (missing.length === 0 || Date.now() > end) return missing
    await sleep(200)
  }
}

/** dockerd's log says a reload was refused (a config it could not apply). */
function reloadRefused(log: string): string | undefined {
  const lines = log
    .split('\n')
    .filter(l => /reload|reconfigur/i.test(l) && /level=(error|warning)|error|fail/i.test(l))
  return lines.length > 0 ? lines.slice(-3).join('\n') : undefined
}

/** Writes daemon.json as this run means it (or with live-restore forced on, during a restart). */
async function put(ctx: Ctx, text: string): Promise<void> {
  await writeFileAtomic(ctx.runner, DAEMON_JSON, text, 0o644, ctx.host.tempDir)
}

/** The previous file back (or none, when there was none). */
async function restorePrevious(ctx: Ctx, written: Written): Promise<void> {
  if (written.hadBackup) {
    await ctx.runner.run(['cp', '-p', '--', DAEMON_JSON_BACKUP, DAEMON_JSON], {root: true})
  } else {
    await removeFile(ctx.runner, DAEMON_JSON)
  }
  ctx.outputs.daemonConfigChanged = false
}

/** Reloads and proves the keys took; a refused reload puts the previous file back and reloads it. */
async function reload(
  ctx: Ctx,
  manager: ServiceManager,
  action: Activation,
  written: Written | undefined
): Promise<{missing: string[]; downtime: number}> {
  const started = Date.now()
  await reloadDocker(ctx.runner, manager)
  const missing = await waitTaken(ctx, action.config, action.reload)
  const downtime = (Date.now() - started) / 1000
  if (missing.length === 0) return {missing, downtime}
  const refused = reloadRefused(await daemonLogTail(ctx.runner, manager))
  if (refused !== undefined && written) {
    await restorePrevious(ctx, written)
    await reloadDocker(ctx.runner, manager)
    throw new HostError(
      `Docker refused to reload the new ${DAEMON_JSON}; the previous ${written.hadBackup ? 'file is back' : 'state (no file) is back'} and reloaded, nothing was restarted. The change that failed: ${written.action.diff.join('; ')}. Daemon log:\n${refused}`
    )
  }
  return {missing, downtime}
}

/** Turns live-restore on by reload, so the restart that follows keeps containers running. */
async function liveRestoreOn(
  ctx: Ctx,
  manager: ServiceManager,
  action: Activation,
  text: string,
  written: Written | undefined
): Promise<void> {
  await put(ctx, text)
  await reloadDocker(ctx.runner, manager)
  const on = (await waitTaken(ctx, {'live-restore': true}, ['live-restore'])).length === 0
  if (on) return
  if (written) await restorePrevious(ctx, written)
  await reloadDocker(ctx.runner, manager)
  throw new HostError(
    `This Docker did not turn live-restore on, so a restart would stop running containers (${action.workloads.join(', ')}). Nothing was restarted and the previous ${DAEMON_JSON} is back. Set allow-restart: true to restart anyway, or make the change when they are done.`
  )
}

/**
 * A restart that fails is undone: the previous file back and Docker started again. While
 * containers are protected, that start keeps live-restore on (a daemon starting without it stops
 * the containers it finds), then the previous file exactly, by reload.
 */
async function rollBack(
  ctx: Ctx,
  manager: ServiceManager,
  written: Written,
  protecting: boolean,
  cause: unknown
): Promise<HostError> {
  const log = await daemonLogTail(ctx.runner, manager)
  await restorePrevious(ctx, written)
  if (protecting) {
    const previous = await previousConfig(ctx, written)
    await put(ctx, serialiseDaemonConfig({...previous, 'live-restore': true}))
  }
  await restartDocker(ctx.runner, manager, ctx.host.tempDir, m => core.info(m))
  if (protecting) {
    const previous = await previousConfig(ctx, written)
    if (previous['live-restore'] === undefined) {
      await put(ctx, serialiseDaemonConfig({...previous, 'live-restore': false}))
      await reloadDocker(ctx.runner, manager)
    }
    await restorePrevious(ctx, written)
    await reloadDocker(ctx.runner, manager)
  }
  return new HostError(
    `Docker did not start with the new ${DAEMON_JSON}; the previous ${written.hadBackup ? 'file is back' : 'state (no file) is back'} and Docker is running again. ` +
      `The change that failed: ${written.action.diff.join('; ')}. Daemon log:\n${errorLines(log)}`,
    {cause}
  )
}

/** The config in force before this run (the backup), as an object. */
async function previousConfig(ctx: Ctx, written: Written): Promise<JsonObject> {
  if (!written.hadBackup) return {}
  const text = (await readFileMaybe(ctx.runner, DAEMON_JSON_BACKUP)) ?? '{}'
  return parseDaemonConfig(text)
}

/**
 * Puts live-restore back as the file this run wrote has it. A reload keeps the value of a key the
 * file does not set, so "not set" is applied as an explicit false first, then the file is written
 * as meant (the daemon already runs it that way; its next start reads the same).
 */
async function liveRestoreBack(
  ctx: Ctx,
  manager: ServiceManager,
  action: Activation,
  written: Written
): Promise<void> {
  const wanted = action.config['live-restore']
  const applied = wanted === undefined ? {...action.config, 'live-restore': false} : action.config
  await put(ctx, serialiseDaemonConfig(applied))
  await reloadDocker(ctx.runner, manager)
  const expected = wanted === true
  const back = await waitTaken(ctx, {'live-restore': expected}, ['live-restore'])
  if (wanted === undefined) await put(ctx, written.action.text)
  if (back.length > 0) {
    ctx.warn(
      `live-restore did not go back to ${String(expected)} by reload; it stays on until Docker restarts.`
    )
  }
}

/** Restarts Docker, protected by live-restore when the plan says so; rolls back when it fails. */
async function restart(
  ctx: Ctx,
  manager: ServiceManager,
  action: Activation,
  written: Written | undefined,
  reason: string
): Promise<ActivationReport> {
  if (action.unprotectable && action.workloads.length > 0 && !ctx.inputs.allowRestart) {
    if (written) await restorePrevious(ctx, written)
    if (written) await reloadDocker(ctx.runner, manager)
    throw new HostError(
      `${reason}, and live-restore cannot keep running containers alive here (swarm mode): ${action.workloads.join(', ')}. The previous ${DAEMON_JSON} is back; nothing was restarted. Set allow-restart: true to restart anyway.`
    )
  }
  const protect = action.protect
  if (protect) await liveRestoreOn(ctx, manager, action, protect.text, written)
  core.info(
    `Restarting Docker: ${reason}.` +
      (action.workloads.length === 0
        ? ' No container of anyone else is running.'
        : protect
          ? ` live-restore keeps these running: ${action.workloads.join(', ')}.`
          : ` These stop (those with a restart policy come back): ${action.workloads.join(', ')}.`)
  )
  const started = Date.now()
  try {
    await restartDocker(ctx.runner, manager, ctx.host.tempDir, m => core.info(m))
  } catch (e) {
    if (!written) throw e
    throw await rollBack(ctx, manager, written, protect !== undefined, e)
  }
  const downtime = (Date.now() - started) / 1000
  if (protect && written) await liveRestoreBack(ctx, manager, action, written)
  return {
    how: 'restart',
    restartKeys: action.restart,
    downtime,
    protectedContainers: protect ? action.workloads : []
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
  written: Written | undefined
): Promise<ActivationReport> {
  const manager = await detectServiceManager(ctx.host.systemd)
  if (action.kind === 'restart') return restart(ctx, manager, action, written, action.reason)
  const {missing, downtime} = await reload(ctx, manager, action, written)
  if (missing.length === 0) {
    core.info(
      `Reloaded Docker: ${action.reload.join(', ')} applied by the same daemon in ${downtime.toFixed(2)} s; no container was touched.`
    )
    return {how: 'reload', restartKeys: [], downtime, protectedContainers: []}
  }
  const reason = `the reload did not apply ${missing.join(', ')}`
  core.info(`${reason}: restarting instead.`)
  return restart(ctx, manager, {...action, restart: missing}, written, reason)
}
