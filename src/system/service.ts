/** Docker's service: which manager runs it, and starting, stopping, restarting and reloading it through that one. */
import type {CommandRunner} from '../exec/runner.js'
import type {EngineApi} from './engine-api.js'
import {HostError, tailLines} from '../errors.js'
import {exists, readFileMaybe, removeFile, writeFileAtomic} from './files.js'
import {pidAlive} from './process.js'
import type {ServiceManager} from '../models/service-manager.js'

export type {ServiceManager} from '../models/service-manager.js'

/** Where a dockerd this action spawned itself logs, and the marker that says it spawned it. */
export const DIRECT_LOG = '/var/log/docker-gpu-setup/dockerd.log'
/** Holds the pid of a dockerd this action spawned, so it knows it may stop it. */
export const DIRECT_MARKER = '/run/docker-gpu-setup/dockerd.pid'
const DOCKERD_PIDFILE = '/var/run/docker.pid'
/**
 * How long one start or restart may take before the step fails with the daemon's log. Docker's own
 * unit sets no start timeout (TimeoutStartSec=0): a dockerd that never reports ready would hold
 * `systemctl start` forever.
 */
export const START_TIMEOUT_S = 120
/** Where a `docker` client lives (sudo's secure_path and the runner's PATH cover these). */
const CLIENT_DIRS = [
  '/usr/local/sbin',
  '/usr/local/bin',
  '/usr/sbin',
  '/usr/bin',
  '/sbin',
  '/bin',
  '/snap/bin'
]

/** Path of the `docker` client, or undefined when none is installed (a daemon alone is useless here). */
export async function findDockerClient(): Promise<string | undefined> {
  for (const dir of CLIENT_DIRS) if (await exists(`${dir}/docker`)) return `${dir}/docker`
  return undefined
}

const NO_CLIENT =
  "Docker's daemon is installed but there is no docker client to talk to it: install it (Debian 13 and later ship it as docker-cli: sudo apt-get install docker-cli), or let this action install Docker (install-docker: auto or true)."

/** Picks the service manager: systemd only when it is PID 1, sysv when Docker's init script exists. */
export async function detectServiceManager(systemd: boolean): Promise<ServiceManager> {
  if (systemd) return 'systemd'
  return (await exists('/etc/init.d/docker')) ? 'sysv' : 'direct'
}

/**
 * The daemon's version when it answers within a few seconds, else undefined (also with no client:
 * the job's steps could not use it). Through the Engine API when `api` is given (no docker process).
 */
export async function probeDaemon(
  runner: CommandRunner,
  api?: EngineApi
): Promise<string | undefined> {
  if ((await findDockerClient()) === undefined) return undefined
  if (api) {
    const v = await api.json<{Version?: string}>('/version', 5_000).catch(() => undefined)
    return v?.Version || undefined
  }
  const r = await runner.run(['docker', 'version', '--format', '{{.Server.Version}}'], {
    root: true,
    allowFailure: true,
    timeoutSeconds: 5
  })
  const version = r.stdout.trim()
  return r.exitCode === 0 && version !== '' ? version : undefined
}

/**
 * Probes until the daemon answers, the deadline passes, or `starting` says it no longer can (a
 * dockerd that exited, a unit that failed); each probe bounded on its own. Without a client nothing
 * can answer: that is said at once, not after the deadline.
 */
export async function waitForDaemon(
  runner: CommandRunner,
  deadlineMs = 45_000,
  starting: () => boolean | Promise<boolean> = () => true
): Promise<string | undefined> {
  if ((await findDockerClient()) === undefined) throw new HostError(NO_CLIENT)
  const end = Date.now() + deadlineMs
  for (;;) {
    const version = await probeDaemon(runner)
    if (version !== undefined || Date.now() > end || !(await starting())) return version
    await new Promise(r => setTimeout(r, 300))
  }
}

/** Is there a docker.socket unit (Docker's and Debian's packages ship one)? */
async function hasSocketUnit(runner: CommandRunner): Promise<boolean> {
  const r = await runner.run(['systemctl', 'show', '-p', 'LoadState', 'docker.socket'], {
    allowFailure: true
  })
  return r.stdout.includes('LoadState=loaded')
}

/** Is docker.service still on its way up? False once systemd gave up on it (failed, start limit hit). */
async function unitStarting(runner: CommandRunner): Promise<boolean> {
  const r = await runner.run(['systemctl', 'is-failed', '--quiet', 'docker.service'], {
    allowFailure: true
  })
  return r.exitCode !== 0
}

/** The pid of a dockerd this action spawned and that still runs, else undefined. */
export async function ownDockerdPid(runner: CommandRunner): Promise<number | undefined> {
  const pid = await markedPid(runner)
  return pid !== undefined && pidAlive(pid) ? pid : undefined
}

/** The pid in DIRECT_MARKER, alive or not. */
async function markedPid(runner: CommandRunner): Promise<number | undefined> {
  const pid = Number((await readFileMaybe(runner, DIRECT_MARKER))?.trim())
  return Number.isInteger(pid) && pid > 0 ? pid : undefined
}

/** Is docker enabled at boot (systemd only)? */
export async function isEnabled(runner: CommandRunner): Promise<boolean> {
  const r = await runner.run(['systemctl', 'is-enabled', '--quiet', 'docker.service'], {
    allowFailure: true
  })
  return r.exitCode === 0
}

/** Enables docker.service and docker.socket at boot (systemctl, as root). */
export async function enableDocker(runner: CommandRunner): Promise<void> {
  await runner.run(['systemctl', 'enable', 'docker.service', 'docker.socket'], {root: true})
}

/**
 * The last lines of the daemon's log, wherever this host's service manager keeps it; with `since`
 * (epoch ms) only what dockerd logged from then on (journald by time; a log file by its
 * `time="…"` stamps).
 */
export async function daemonLogTail(
  runner: CommandRunner,
  manager: ServiceManager,
  since?: number
): Promise<string> {
  if (manager === 'systemd') {
    const window = since === undefined ? [] : ['--since', `@${Math.floor(since / 1000)}`]
    const r = await runner.run(
      ['journalctl', '-u', 'docker.service', '-n', '30', '--no-pager', ...window],
      {root: true, allowFailure: true}
    )
    return tailLines(r.stdout, 30)
  }
  const direct = (await readFileMaybe(runner, DIRECT_LOG)) ?? ''
  const sysv = (await readFileMaybe(runner, '/var/log/docker.log')) ?? ''
  const lines = (direct || sysv).split('\n')
  const recent =
    since === undefined
      ? lines
      : lines.filter(l => {
          const stamp = /time="([^"]+)"/.exec(l)?.[1]
          return stamp !== undefined && Date.parse(stamp) >= since - 1000
        })
  return tailLines(recent.join('\n'), 30)
}

/**
 * `systemctl start|restart docker`, bounded in time and proven by a probe; the unit's log when it
 * does not answer.
 */
async function systemdDocker(runner: CommandRunner, verb: 'start' | 'restart'): Promise<string> {
  // A unit that failed earlier (start-limit-hit) refuses to start until its failure is cleared.
  await runner.run(['systemctl', 'reset-failed', 'docker.service'], {
    root: true,
    allowFailure: true
  })
  // dockerd -H fd:// takes its listening socket from docker.socket. A package swap can leave the
  // socket unit "active" with no socket left ("Socket unit configuration has changed while unit
  // has been running ... not functional until restarted"), or stopped; either way every start
  // then fails with "no sockets found via socket activation". So the socket restarts with the
  // service: both stop together (no client can wake the service in between), both start.
  const socket = await hasSocketUnit(runner)
  if (socket) {
    await runner.run(['systemctl', 'stop', 'docker.socket', 'docker.service'], {
      root: true,
      timeoutSeconds: 120
    })
  }
  const r = await runner.run(
    ['systemctl', socket ? 'start' : verb, ...(socket ? ['docker.socket'] : []), 'docker.service'],
    {root: true, allowFailure: true, timeoutSeconds: START_TIMEOUT_S}
  )
  if (r.exitCode === 124) {
    throw new HostError(
      `'systemctl ${verb} docker' did not finish within ${START_TIMEOUT_S} s: dockerd never reported that it is ready. Last lines of its log:\n${await daemonLogTail(runner, 'systemd')}`
    )
  }
  const version = await waitForDaemon(runner, 45_000, () => unitStarting(runner))
  if (version) return version
  throw new HostError(
    `Docker did not answer after 'systemctl ${verb} docker'. Last lines of its log:\n${await daemonLogTail(runner, 'systemd')}`
  )
}

/**
 * Starts Docker with the host's service manager and proves it answers. Without systemd, tries the
 * sysv script, then spawns dockerd itself (detached, without the runner's tracking id).
 * Touches: the docker service; DIRECT_LOG and DIRECT_MARKER when it spawns dockerd.
 */
export async function startDocker(
  runner: CommandRunner,
  manager: ServiceManager,
  tempDir: string,
  info: (m: string) => void
): Promise<string> {
  if (manager === 'systemd') return systemdDocker(runner, 'start')
  if (manager === 'sysv') {
    const r = await runner.run(['service', 'docker', 'start'], {
      root: true,
      allowFailure: true,
      timeoutSeconds: 60
    })
    // An init script can exit 0 and start nothing: only a probe counts.
    const version = r.exitCode === 0 ? await waitForDaemon(runner, 15_000) : undefined
    if (version) return version
    info(
      `'service docker start' did not bring Docker up (exit ${r.exitCode}); starting dockerd directly.`
    )
  }
  return spawnDockerd(runner, tempDir)
}

async function spawnDockerd(runner: CommandRunner, tempDir: string): Promise<string> {
  const dockerd = (await exists('/usr/bin/dockerd')) ? '/usr/bin/dockerd' : '/usr/sbin/dockerd'
  // A stale pid file from a killed dockerd makes the next one refuse to start.
  const stale = await readFileMaybe(runner, DOCKERD_PIDFILE)
  if (stale !== undefined && !pidAlive(Number(stale.trim()))) {
    await removeFile(runner, DOCKERD_PIDFILE)
  }
  await runner.run(['install', '-d', '-m', '0755', '/var/log/docker-gpu-setup'], {root: true})
  const pid = await runner.spawnDetached([dockerd], {root: true, logFile: DIRECT_LOG})
  const version = await waitForDaemon(runner, 45_000, () => pidAlive(pid))
  if (!version) {
    throw new HostError(
      `dockerd did not start. Last lines of ${DIRECT_LOG}:\n${await daemonLogTail(runner, 'direct')}`
    )
  }
  const daemonPid = (await readFileMaybe(runner, DOCKERD_PIDFILE))?.trim() ?? String(pid)
  await writeFileAtomic(runner, DIRECT_MARKER, `${daemonPid}\n`, 0o644, tempDir)
  return version
}

/** The pid of the running dockerd (its pid file), or undefined when none runs. */
export async function runningDockerdPid(runner: CommandRunner): Promise<number | undefined> {
  const pid = Number((await readFileMaybe(runner, DOCKERD_PIDFILE))?.trim())
  return Number.isInteger(pid) && pid > 0 && pidAlive(pid) ? pid : undefined
}

/**
 * The running dockerd's binary as the kernel sees it (readlink /proc/PID/exe, as root): ends in
 * " (deleted)" when a package replaced the file after the daemon started.
 */
export async function dockerdBinary(
  runner: CommandRunner,
  pid: number
): Promise<string | undefined> {
  const r = await runner.run(['readlink', `/proc/${pid}/exe`], {root: true, allowFailure: true})
  return r.exitCode === 0 ? r.stdout.trim() : undefined
}

/** Stops a dockerd by pid and waits until it is gone (its containers stop with it). */
export async function stopDockerd(runner: CommandRunner, pid: number): Promise<void> {
  await runner.run(['kill', '-TERM', String(pid)], {root: true, allowFailure: true})
  const end = Date.now() + 30_000
  while (pidAlive(pid) && Date.now() < end) await new Promise(r => setTimeout(r, 200))
  if (pidAlive(pid)) throw new HostError(`dockerd (pid ${pid}) did not stop within 30 s`)
  if (pid === (await markedPid(runner))) await removeFile(runner, DIRECT_MARKER)
}

/**
 * Asks the running dockerd to reload daemon.json (SIGHUP): `systemctl reload` under systemd (its
 * unit sends the signal to the main pid), else the signal to the pid in dockerd's pid file,
 * whoever started it. Never an init script's force-reload: Debian's and Docker's restart.
 */
export async function reloadDocker(runner: CommandRunner, manager: ServiceManager): Promise<void> {
  if (manager === 'systemd') {
    await runner.run(['systemctl', 'reload', 'docker.service'], {root: true, timeoutSeconds: 60})
    return
  }
  const pid = await runningDockerdPid(runner)
  if (pid === undefined)
    throw new HostError('No dockerd runs to reload (no live pid in /var/run/docker.pid)')
  await runner.run(['kill', '-HUP', String(pid)], {root: true})
}

/**
 * Restarts Docker so it reads daemon.json again, and proves it answers. systemd restarts the
 * unit; elsewhere the running dockerd is stopped and started again as startDocker does.
 */
export async function restartDocker(
  runner: CommandRunner,
  manager: ServiceManager,
  tempDir: string,
  info: (m: string) => void
): Promise<string> {
  if (manager === 'systemd') return systemdDocker(runner, 'restart')
  const pid = await runningDockerdPid(runner)
  if (pid !== undefined) await stopDockerd(runner, pid)
  return startDocker(runner, manager, tempDir, info)
}
