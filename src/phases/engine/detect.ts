/** Reads the engine phase's facts: dpkg, apt's candidates, the service, the Engine API, offline .debs and /etc/group (read directly). */
import {promises as fs} from 'node:fs'
import {candidates, heldPackages, installedPackages, readOfflineFolder} from '../../system/apt.js'
import {openEngineApi} from '../../system/engine-api.js'
import {exists} from '../../system/files.js'
import {
  detectServiceManager,
  findDockerClient,
  isEnabled,
  ownDockerdPid,
  probeDaemon
} from '../../system/service.js'
import type {PhaseContext} from '../pipeline.js'
import {engineFacts} from './facts.js'
import type {EngineInputs} from './inputs.js'
import {
  DISTRO_CLIENT,
  DISTRO_PACKAGES,
  DOCKER_CE_PACKAGES,
  WATCHED_PACKAGES,
  engineSource,
  groupMembers,
  type EngineFacts
} from './plan.js'

/** Where the engine's binary lives when a package installed it. */
async function findDockerd(): Promise<string | undefined> {
  for (const p of ['/usr/bin/dockerd', '/usr/sbin/dockerd']) if (await exists(p)) return p
  return undefined
}

/**
 * Reads the host's engine state (dpkg, apt's lists, the service, /etc/group, offline-debs);
 * changes nothing. Sets the docker-version output to what answers now.
 */
export async function detectEngine(ctx: PhaseContext<EngineInputs>): Promise<EngineFacts> {
  const {runner, inputs} = ctx
  const [dockerd, client] = await Promise.all([findDockerd(), findDockerClient()])
  // A daemon without a client gets the client's package: that is an install too.
  const mayInstall = dockerd === undefined || inputs.installDocker === 'true' || !client
  const [installed, manager, serverVersion, ownPid, etcGroup, snap] = await Promise.all([
    installedPackages(runner, WATCHED_PACKAGES),
    detectServiceManager(ctx.host.systemd),
    dockerd && client
      ? openEngineApi(ctx.host.dockerSocket).then(async api => probeDaemon(runner, api))
      : Promise.resolve(undefined),
    ownDockerdPid(runner),
    fs.readFile('/etc/group', 'utf8'),
    exists('/snap/bin/docker')
  ])
  const offline = await readOfflineFolder(runner, mayInstall ? inputs.offlineDebs : undefined)
  const wanted =
    inputs.dockerSource === 'distro'
      ? [...DISTRO_PACKAGES, DISTRO_CLIENT]
      : [...DOCKER_CE_PACKAGES, DISTRO_CLIENT]
  const facts: EngineFacts = {
    dockerd,
    client: client !== undefined,
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
  ctx.outputs.dockerVersion = serverVersion ?? ''
  ctx.outputs.dockerChanged = false
  ctx.show(
    engineFacts({
      installed: dockerd !== undefined,
      version: serverVersion ?? installed.get('docker-ce') ?? installed.get('docker.io'),
      source: engineSource(facts),
      running: serverVersion !== undefined,
      manager,
      enabled: facts.enabled
    })
  )
  return facts
}
