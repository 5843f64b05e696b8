import {promises as fs} from 'node:fs'
import * as path from 'node:path'
import * as core from '@actions/core'
import {downloadTool} from '@actions/tool-cache'
import {HostError} from '../errors.js'
import type {Phase, RunContext} from '../pipeline.js'
import {defaultDockerAptUrl} from '../system/os-release.js'
import {resolvePin} from '../system/apt-model.js'
import {
  aptInstall,
  aptMark,
  aptRemove,
  aptUpdate,
  availableVersions,
  candidates,
  heldPackages,
  installedPackages,
  providedNames,
  readDebs
} from '../system/apt.js'
import {exists, readFileMaybe, renameFile, writeFileAtomic} from '../system/files.js'
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
  DISABLED_SUFFIX,
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

async function listDebs(folder: string): Promise<string[]> {
  const names = await fs.readdir(folder)
  return names
    .filter(n => n.endsWith('.deb'))
    .sort()
    .map(n => path.join(folder, n))
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
  const debs =
    mayInstall && inputs.offlineDebs
      ? await readDebs(runner, await listDebs(inputs.offlineDebs))
      : []
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
    debs,
    provided: debs.length > 0 ? await providedNames(runner) : new Set()
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

/** Fetches Docker's key (`<url>/gpg`), from a file:// URL too. */
async function fetchKey(url: string): Promise<string> {
  const keyUrl = `${url}/gpg`
  if (keyUrl.startsWith('file://')) return fs.readFile(new URL(keyUrl), 'utf8')
  const file = await downloadTool(keyUrl)
  try {
    return await fs.readFile(file, 'utf8')
  } finally {
    await fs.rm(file, {force: true})
  }
}

/** Key into /etc/apt/keyrings, the signed-by source, stale Docker sources set aside. */
async function addDockerRepo(ctx: RunContext, url: string): Promise<void> {
  const {runner} = ctx
  const key = await fetchKey(url)
  if (!key.includes('BEGIN PGP PUBLIC KEY BLOCK')) {
    throw new HostError(`${url}/gpg is not an armored PGP key: check docker-apt-url`)
  }
  if ((await readFileMaybe(runner, DOCKER_KEYRING)) !== key) {
    await writeFileAtomic(runner, DOCKER_KEYRING, key, 0o644, ctx.host.tempDir)
  }
  const arch = (await runner.run(['dpkg', '--print-architecture'])).stdout.trim()
  const line = dockerSourceLine(url, arch, ctx.host.os.codename)
  if ((await readFileMaybe(runner, DOCKER_LIST)) !== line) {
    await writeFileAtomic(runner, DOCKER_LIST, line, 0o644, ctx.host.tempDir)
  }
  const dir = '/etc/apt/sources.list.d'
  const files = await Promise.all(
    (await fs.readdir(dir))
      .filter(n => n.endsWith('.list') || n.endsWith('.sources'))
      .map(async n => ({
        path: path.join(dir, n),
        content: await fs.readFile(path.join(dir, n), 'utf8')
      }))
  )
  for (const stale of staleDockerSources(files, url)) {
    core.warning(
      `Setting aside ${stale}: it also points at Docker's repository (renamed to ${stale}${DISABLED_SUFFIX})`
    )
    await renameFile(runner, stale, `${stale}${DISABLED_SUFFIX}`)
  }
}

/** `name=version` for pinned packages, checked against the package lists before anything is removed. */
async function resolveInstall(
  ctx: RunContext,
  action: Extract<EngineAction, {kind: 'install'}>
): Promise<string[]> {
  const {pin} = action
  if (pin === undefined) return action.packages
  const resolved = new Map<string, string>()
  for (const name of action.pinned) {
    const versions = await availableVersions(ctx.runner, name)
    const version = resolvePin(pin, versions)
    if (version === undefined) {
      throw new HostError(
        `docker-version ${pin} is not available for ${name}. Available: ${versions.slice(0, 15).join(', ') || 'none (is the repository reachable?)'}`
      )
    }
    resolved.set(name, version)
  }
  return action.packages.map(n => (resolved.has(n) ? `${n}=${resolved.get(n)}` : n))
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
      case 'install-debs': {
        // No source is read: an empty source list, so apt sees only the folder (air-gapped hosts).
        const none = path.join(ctx.host.tempDir, 'docker-gpu-setup-no-sources')
        await fs.mkdir(path.join(none, 'parts'), {recursive: true})
        await fs.writeFile(path.join(none, 'sources.list'), '')
        await aptInstall(runner, action.files, [
          '--no-download',
          '-o',
          `Dir::Etc::SourceList=${path.join(none, 'sources.list')}`,
          '-o',
          `Dir::Etc::SourceParts=${path.join(none, 'parts')}`
        ])
        break
      }
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
