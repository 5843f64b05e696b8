/** The engine phase's effects: apt repository, packages, holds, the service and the docker group (read from /etc/group directly); its preview and verification. */
import {promises as fs} from 'node:fs'
import * as core from '@actions/core'
import {HostError, errorMessage} from '../../errors.js'
import {
  aptInstall,
  aptInstallOffline,
  aptMark,
  aptRemove,
  aptUpdate,
  candidates,
  installedPackages,
  noSourcesOptions,
  recommendsOf,
  simulatedRemovals,
  resolvePinned
} from '../../system/apt.js'
import {ensureAptRepo, fetchKey, isArmored} from '../../system/apt-repo.js'
import {
  detectServiceManager,
  dockerdBinary,
  enableDocker,
  probeDaemon,
  restartDocker,
  runningDockerdPid,
  startDocker,
  stopDockerd,
  waitForDaemon
} from '../../system/service.js'
import type {PhaseContext} from '../pipeline.js'
import {engineFacts} from './facts.js'
import type {EngineInputs} from './inputs.js'
import {
  DOCKER_KEYRING,
  DOCKER_LIST,
  WATCHED_PACKAGES,
  dockerSourceLine,
  engineSource,
  engineVersion,
  serverMatchesPackage,
  groupMembers,
  staleDockerSources,
  type EngineAction,
  type EnginePlan
} from './plan.js'

type Ctx = PhaseContext<EngineInputs>

/** Docker's key (`<url>/gpg`) into /etc/apt/keyrings, the signed-by source, stale Docker sources set aside. */
async function addDockerRepo(ctx: Ctx, url: string): Promise<void> {
  const key = await fetchKey(`${url}/gpg`)
  if (!isArmored(key))
    throw new HostError(`${url}/gpg is not an armored PGP key: check docker-apt-url`)
  const arch = (await ctx.runner.run(['dpkg', '--print-architecture'])).stdout.trim()
  await ensureAptRepo(
    ctx.runner,
    {
      keySource: `${url}/gpg`,
      key,
      keyring: DOCKER_KEYRING,
      listPath: DOCKER_LIST,
      line: dockerSourceLine(url, arch, ctx.host.os.codename),
      stale: files => staleDockerSources(files, url),
      what: "Docker's repository"
    },
    ctx.host.tempDir
  )
}

/**
 * What the install action passes to apt: `name=version` for pinned packages (checked against the
 * package lists before anything is removed), plus the optional packages the lists have.
 */
async function resolveInstall(
  ctx: Ctx,
  action: Extract<EngineAction, {kind: 'install'}>
): Promise<string[]> {
  const pinned =
    action.pin === undefined
      ? []
      : await resolvePinned(ctx.runner, action.pinned, action.pin, 'docker-version')
  const packages = action.packages.map(n => pinned.find(p => p.startsWith(`${n}=`)) ?? n)
  const spec = packages.find(p => p.split('=')[0] === action.recommendsOf)
  const recommended = spec === undefined ? [] : await recommendsOf(ctx.runner, spec)
  const optional = [...(action.ifAvailable ?? []), ...recommended].filter(
    n => !action.packages.includes(n)
  )
  const available = optional.length > 0 ? await candidates(ctx.runner, optional) : new Map()
  const extra = optional.filter(n => available.get(n) !== undefined)
  if (recommended.length > 0) {
    const taken = recommended.filter(n => extra.includes(n))
    core.info(
      `${action.recommendsOf} recommends ${recommended.join(', ')}; installing ${taken.join(', ') || 'none of them'} (the rest are not in the package lists).`
    )
  }
  return [...packages, ...extra]
}

/**
 * The packages apt would remove beyond those the plan removes itself (they depend on or conflict
 * with what is installed): apt's simulation, read-only.
 */
async function implicitRemovals(
  ctx: Ctx,
  p: EnginePlan,
  installArgs: readonly string[]
): Promise<string[]> {
  const debs = p.actions.find(a => a.kind === 'install-debs')
  const removals =
    debs?.kind === 'install-debs'
      ? await simulatedRemovals(ctx.runner, debs.files, await noSourcesOptions(ctx.host.tempDir))
      : installArgs.length > 0
        ? await simulatedRemovals(ctx.runner, [...installArgs])
        : []
  const planned = p.actions.flatMap(a => (a.kind === 'remove' ? a.packages : []))
  return removals.filter(n => !planned.includes(n))
}

function implicitRemovalsLine(implicit: readonly string[]): string {
  return `Installing the engine also removes ${implicit.join(', ')} (apt: they depend on or conflict with the new packages). Removed, not purged: their configuration stays.`
}

/**
 * A dry run's preview of what apt itself adds to the plan: the packages it would remove too. Only
 * when the install reads the package lists as they are now (no repository added, no update first):
 * otherwise the simulation would answer for lists the real run does not use.
 */
export async function previewEngine(p: EnginePlan, ctx: Ctx): Promise<string[]> {
  if (p.actions.some(a => a.kind === 'docker-repo' || a.kind === 'apt-update')) return []
  const install = p.actions.find(a => a.kind === 'install')
  const installArgs = install?.kind === 'install' ? await resolveInstall(ctx, install) : []
  const implicit = await implicitRemovals(ctx, p, installArgs)
  return implicit.length > 0 ? [implicitRemovalsLine(implicit)] : []
}

/** Steps that stop or remove something: pins are resolved (and may fail) before the first of them. */
const DESTRUCTIVE = new Set<EngineAction['kind']>([
  'stop-own-dockerd',
  'unhold',
  'remove',
  'install',
  'install-debs'
])

/**
 * Why the daemon that answers is not the engine just installed, or undefined when it is: package
 * scripts may leave the old dockerd serving (Ubuntu's docker.io upgrades with
 * --no-stop-on-upgrade; a policy-rc.d can forbid restarts), and a rebuild keeps the version.
 */
async function staleDaemon(ctx: Ctx, server: string): Promise<string | undefined> {
  const pid = await runningDockerdPid(ctx.runner)
  const exe = pid === undefined ? undefined : await dockerdBinary(ctx.runner, pid)
  if (exe?.endsWith(' (deleted)')) {
    return `dockerd (pid ${pid}) still runs the binary the package change replaced (${exe})`
  }
  const installed = engineVersion(await installedPackages(ctx.runner, WATCHED_PACKAGES))
  if (installed !== undefined && !serverMatchesPackage(server, installed)) {
    return `the daemon that answers is Docker ${server}, the installed engine ${installed}`
  }
  return undefined
}

/**
 * Starts Docker unless it already answers (a package script may have started it). After a package
 * change, a daemon that is not the installed engine is restarted through the service manager.
 */
async function ensureStarted(ctx: Ctx, packagesChanged: boolean): Promise<void> {
  const manager = await detectServiceManager(ctx.host.systemd)
  const server = await probeDaemon(ctx.runner)
  if (server === undefined) {
    await startDocker(ctx.runner, manager, ctx.host.tempDir, m => core.info(m))
    return
  }
  const stale = packagesChanged ? await staleDaemon(ctx, server) : undefined
  if (stale === undefined) return
  core.info(`Restarting Docker: ${stale}.`)
  await restartDocker(ctx.runner, manager, ctx.host.tempDir, m => core.info(m))
}

/** Adds users to the docker group (creating it if a package did not) and says when that takes effect. */
async function addUsers(ctx: Ctx, users: readonly string[]): Promise<void> {
  const group = groupMembers(await fs.readFile('/etc/group', 'utf8'), 'docker')
  if (group === undefined) {
    await ctx.runner.run(['groupadd', '--system', 'docker'], {root: true})
  }
  for (const user of users) {
    await ctx.runner.run(['usermod', '-aG', 'docker', user], {
      root: true,
      context: `Adding ${user} to the docker group`
    })
  }
  // In the summary too: the job's next steps fail on the socket until the runner restarts.
  ctx.warn(
    `Added ${users.join(', ')} to the 'docker' group. A runner that is already running does not get the group: restart the runner service so later jobs can use Docker without sudo.`
  )
}

/** Carries out one action; `installArgs` are the install action's packages with resolved pins. */
async function applyAction(
  ctx: Ctx,
  action: EngineAction,
  installArgs: string[] | undefined,
  packagesChanged: boolean
): Promise<void> {
  const {runner} = ctx
  switch (action.kind) {
    case 'stop-own-dockerd':
      core.info(`Stopping dockerd (pid ${action.pid}) that this action started`)
      return stopDockerd(runner, action.pid)
    case 'unhold':
      return aptMark(runner, 'unhold', action.packages)
    case 'docker-repo':
      return addDockerRepo(ctx, action.url)
    case 'apt-update':
      return aptUpdate(runner)
    case 'remove':
      return aptRemove(runner, action.packages)
    case 'install':
      return aptInstall(runner, installArgs ?? action.packages)
    case 'install-debs':
      return aptInstallOffline(runner, action.files, ctx.host.tempDir)
    case 'hold':
      return aptMark(runner, 'hold', action.packages)
    case 'start':
      return ensureStarted(ctx, packagesChanged)
    case 'enable':
      return enableDocker(runner)
    case 'create-group':
      await runner.run(['groupadd', '--system', 'docker'], {root: true})
      return
    case 'add-users':
      return addUsers(ctx, action.users)
  }
}

/**
 * Carries out the engine plan: apt repository, packages (installed, removed, held), the service
 * and the docker group. Touches apt's sources and keyrings, dpkg, docker.service, /etc/group.
 */
export async function applyEngine(p: EnginePlan, ctx: Ctx): Promise<void> {
  const install = p.actions.find(a => a.kind === 'install')
  let installArgs: string[] | undefined
  const unheld: string[] = []
  try {
    for (const action of p.actions) {
      if (DESTRUCTIVE.has(action.kind) && installArgs === undefined) {
        installArgs = install?.kind === 'install' ? await resolveInstall(ctx, install) : []
        // Named before anything is stopped, removed or installed.
        const implicit = await implicitRemovals(ctx, p, installArgs)
        if (implicit.length > 0) ctx.warn(implicitRemovalsLine(implicit))
      }
      await applyAction(ctx, action, installArgs, p.packagesChange)
      if (action.kind === 'unhold') unheld.push(...action.packages)
    }
  } catch (e) {
    await holdAgain(ctx, unheld)
    throw e
  }
}

/** After a failed change, puts back the holds it lifted on packages that are still installed. */
async function holdAgain(ctx: Ctx, unheld: readonly string[]): Promise<void> {
  if (unheld.length === 0) return
  const still = [...(await installedPackages(ctx.runner, unheld)).keys()]
  if (still.length === 0) return
  await aptMark(ctx.runner, 'hold', still).catch((e: unknown) =>
    ctx.warn(`Could not put back the apt hold on ${still.join(', ')}: ${errorMessage(e)}`)
  )
}

/** Proves Docker answers after the changes; sets docker-version and docker-changed. */
export async function verifyEngine(p: EnginePlan, ctx: Ctx): Promise<string> {
  const version = await waitForDaemon(ctx.runner, 30_000)
  if (version === undefined) throw new HostError('Docker does not answer after the engine phase')
  const installed = await installedPackages(ctx.runner, WATCHED_PACKAGES)
  ctx.outputs.dockerVersion = version
  ctx.outputs.dockerChanged = p.packagesChange
  const manager = await detectServiceManager(ctx.host.systemd)
  const source = engineSource({installed, snap: false})
  // The plan enables the unit when it is not: after apply it is.
  ctx.show(engineFacts({installed: true, version, source, running: true, manager}))
  return `Docker ${version} (${source}) running, service: ${manager}`
}
