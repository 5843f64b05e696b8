import {promises as fs} from 'node:fs'
import * as core from '@actions/core'
import {HostError} from '../errors.js'
import type {Phase, RunContext} from '../pipeline.js'
import {defaultDockerAptUrl} from '../system/os-release.js'
import {
  aptInstall,
  aptInstallOffline,
  aptMark,
  aptRemove,
  aptUpdate,
  candidates,
  heldPackages,
  installedPackages,
  readOfflineFolder,
  resolvePinned
} from '../system/apt.js'
import {ensureAptRepo, fetchKey, isArmored} from '../system/apt-repo.js'
import {exists} from '../system/files.js'
import {
  detectServiceManager,
  enableDocker,
  isEnabled,
  ownDockerdPid,
  probeDaemon,
  startDocker,
  stopDockerd,
  waitForDaemon
} from '../system/service.js'
import {
  DISTRO_PACKAGES,
  DOCKER_CE_PACKAGES,
  DOCKER_KEYRING,
  DOCKER_LIST,
  WATCHED_PACKAGES,
  dockerSourceLine,
  dockerUsers,
  engineSource,
  groupMembers,
  planEngine,
  staleDockerSources,
  type EngineAction,
  type EngineFacts,
  type EnginePlan
} from './engine-model.js'

/** Where the engine's binary lives when a package installed it. */
async function findDockerd(): Promise<string | undefined> {
  for (const p of ['/usr/bin/dockerd', '/usr/sbin/dockerd']) if (await exists(p)) return p
  return undefined
}

/** Reads the host's engine state; changes nothing. */
async function detect(ctx: RunContext): Promise<EngineFacts> {
  const {runner, inputs} = ctx
  const dockerd = await findDockerd()
  const mayInstall = dockerd === undefined || inputs.installDocker === 'true'
  const [installed, manager, serverVersion, ownPid, etcGroup, snap] = await Promise.all([
    installedPackages(runner, WATCHED_PACKAGES),
    detectServiceManager(ctx.host.systemd),
    dockerd ? probeDaemon(runner) : Promise.resolve(undefined),
    ownDockerdPid(runner),
    fs.readFile('/etc/group', 'utf8'),
    exists('/snap/bin/docker')
  ])
  const offline = await readOfflineFolder(runner, mayInstall ? inputs.offlineDebs : undefined)
  const wanted = inputs.dockerSource === 'distro' ? DISTRO_PACKAGES : DOCKER_CE_PACKAGES
  const facts: EngineFacts = {
    dockerd,
    installed,
    held: mayInstall ? await heldPackages(runner) : new Set(),
    snap,
    serverVersion,
    manager,
    enabled: manager === 'systemd' ? await isEnabled(runner) : undefined,
    ownDockerdPid: ownPid,
    dockerGroup: groupMembers(etcGroup, 'docker'),
    candidates:
      mayInstall && inputs.dockerSource !== 'offline'
        ? await candidates(runner, wanted)
        : new Map<string, string | undefined>(),
    ...offline
  }
  ctx.outputs['docker-version'] = serverVersion ?? ''
  ctx.outputs['docker-changed'] = 'false'
  return facts
}

function plan(facts: EngineFacts, ctx: RunContext): EnginePlan {
  const users = dockerUsers(ctx.inputs, ctx.host.user)
  const url = ctx.inputs.dockerAptUrl ?? defaultDockerAptUrl(ctx.host.os)
  const p = planEngine(facts, ctx.inputs, url, users)
  for (const w of p.warnings) ctx.warn(w)
  return p
}

/** Docker's key (`<url>/gpg`) into /etc/apt/keyrings, the signed-by source, stale Docker sources set aside. */
async function addDockerRepo(ctx: RunContext, url: string): Promise<void> {
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

/** `name=version` for pinned packages, checked against the package lists before anything is removed. */
async function resolveInstall(
  ctx: RunContext,
  action: Extract<EngineAction, {kind: 'install'}>
): Promise<string[]> {
  if (action.pin === undefined) return action.packages
  const pinned = await resolvePinned(ctx.runner, action.pinned, action.pin, 'docker-version')
  return action.packages.map(n => pinned.find(p => p.startsWith(`${n}=`)) ?? n)
}

/** Steps that stop or remove something: pins are resolved (and may fail) before the first of them. */
const DESTRUCTIVE = new Set<EngineAction['kind']>([
  'stop-own-dockerd',
  'unhold',
  'remove',
  'install',
  'install-debs'
])

async function apply(p: EnginePlan, ctx: RunContext): Promise<void> {
  const {runner} = ctx
  const install = p.actions.find(a => a.kind === 'install')
  let installArgs: string[] | undefined
  for (const action of p.actions) {
    if (DESTRUCTIVE.has(action.kind) && installArgs === undefined) {
      installArgs = install?.kind === 'install' ? await resolveInstall(ctx, install) : []
    }
    switch (action.kind) {
      case 'stop-own-dockerd':
        core.info(`Stopping dockerd (pid ${action.pid}) that this action started`)
        await stopDockerd(runner, action.pid)
        break
      case 'unhold':
        await aptMark(runner, 'unhold', action.packages)
        break
      case 'docker-repo':
        await addDockerRepo(ctx, action.url)
        break
      case 'apt-update':
        await aptUpdate(runner)
        break
      case 'remove':
        await aptRemove(runner, action.packages)
        break
      case 'install':
        await aptInstall(runner, installArgs ?? action.packages)
        break
      case 'install-debs':
        await aptInstallOffline(runner, action.files, ctx.host.tempDir)
        break
      case 'hold':
        await aptMark(runner, 'hold', action.packages)
        break
      case 'start': {
        const running = await probeDaemon(runner)
        if (running === undefined) {
          const manager = await detectServiceManager(ctx.host.systemd)
          await startDocker(runner, manager, ctx.host.tempDir, m => core.info(m))
        }
        break
      }
      case 'enable':
        await enableDocker(runner)
        break
      case 'create-group':
        await runner.run(['groupadd', '--system', 'docker'], {root: true})
        break
      case 'add-users': {
        const group = groupMembers(await fs.readFile('/etc/group', 'utf8'), 'docker')
        if (group === undefined) await runner.run(['groupadd', '--system', 'docker'], {root: true})
        for (const user of action.users) {
          await runner.run(['usermod', '-aG', 'docker', user], {
            root: true,
            context: `Adding ${user} to the docker group`
          })
        }
        core.warning(
          `Added ${action.users.join(', ')} to the 'docker' group. A runner that is already running does not get the group: restart the runner service so later jobs can use Docker without sudo.`
        )
        break
      }
    }
  }
}

async function verify(p: EnginePlan, ctx: RunContext): Promise<string> {
  const version = await waitForDaemon(ctx.runner, 30_000)
  if (version === undefined) throw new HostError('Docker does not answer after the engine phase')
  const installed = await installedPackages(ctx.runner, WATCHED_PACKAGES)
  ctx.outputs['docker-version'] = version
  ctx.outputs['docker-changed'] = String(p.packagesChange)
  const manager = await detectServiceManager(ctx.host.systemd)
  return `Docker ${version} (${engineSource({installed, snap: false})}) running, service: ${manager}`
}

/** Engine phase: installs Docker per install-docker/docker-source, starts it, adds users to the docker group. */
export const enginePhase: Phase<EngineFacts, EnginePlan> = {
  name: 'Docker engine',
  detect,
  plan,
  apply,
  verify
}
