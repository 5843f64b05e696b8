import {promises as fs} from 'node:fs'
import * as core from '@actions/core'
import {HostError} from '../../errors.js'
import {
  aptInstall,
  aptInstallOffline,
  aptMark,
  aptRemove,
  aptUpdate,
  candidates,
  installedPackages,
  resolvePinned
} from '../../system/apt.js'
import {ensureAptRepo, fetchKey, isArmored} from '../../system/apt-repo.js'
import {
  detectServiceManager,
  enableDocker,
  probeDaemon,
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
  const optional = action.ifAvailable?.length
    ? await candidates(ctx.runner, action.ifAvailable)
    : []
  const extra = [...optional].filter(([, version]) => version !== undefined).map(([name]) => name)
  if (action.pin === undefined) return [...action.packages, ...extra]
  const pinned = await resolvePinned(ctx.runner, action.pinned, action.pin, 'docker-version')
  return [...action.packages.map(n => pinned.find(p => p.startsWith(`${n}=`)) ?? n), ...extra]
}

/** Steps that stop or remove something: pins are resolved (and may fail) before the first of them. */
const DESTRUCTIVE = new Set<EngineAction['kind']>([
  'stop-own-dockerd',
  'unhold',
  'remove',
  'install',
  'install-debs'
])

/** Starts Docker unless it already answers (a package script may have started it). */
async function ensureStarted(ctx: Ctx): Promise<void> {
  if ((await probeDaemon(ctx.runner)) !== undefined) return
  const manager = await detectServiceManager(ctx.host.systemd)
  await startDocker(ctx.runner, manager, ctx.host.tempDir, m => core.info(m))
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
  installArgs: string[] | undefined
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
      return ensureStarted(ctx)
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
  for (const action of p.actions) {
    if (DESTRUCTIVE.has(action.kind) && installArgs === undefined) {
      installArgs = install?.kind === 'install' ? await resolveInstall(ctx, install) : []
    }
    await applyAction(ctx, action, installArgs)
  }
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
