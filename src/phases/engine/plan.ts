/**
 * The engine phase's model (pure): Docker's packages and conflicts, what detection found, and the
 * plan that turns those facts into install, service and group actions.
 */
import {HostError} from '../../errors.js'
import type {PhasePlan} from '../pipeline.js'
import type {ServiceManager} from '../../models/service-manager.js'
import {
  closeDebSet,
  describeHold,
  staleSourceFixes,
  upstreamVersion,
  versionMatchesPin,
  type DebInfo,
  type SourceFile,
  type SourceFix
} from '../../models/apt-model.js'
import type {DockerSource, EngineInputs} from './inputs.js'

/** Docker's own packages (the `docker` source). */
export const DOCKER_CE_PACKAGES = [
  'docker-ce',
  'docker-ce-cli',
  'containerd.io',
  'docker-buildx-plugin',
  'docker-compose-plugin'
]
/** Packages that conflict with Docker's own and are removed before it is installed. */
export const DOCKER_CE_CONFLICTS = [
  'docker.io',
  // Debian 13 and later ship the client apart from docker.io; docker-ce-cli conflicts with it.
  'docker-cli',
  'docker-doc',
  'docker-compose',
  'docker-compose-v2',
  'podman-docker',
  'containerd',
  'runc'
]
/** The distribution's engine (the `distro` source); it needs containerd and runc, so they stay. */
export const DISTRO_PACKAGES = ['docker.io']
/**
 * The distribution's client where it is a package of its own (Debian 13 and later: docker.io only
 * recommends it, and without recommends a host gets a daemon and no `docker`).
 */
export const DISTRO_CLIENT = 'docker-cli'
/** What dpkg is asked about during detection. */
export const WATCHED_PACKAGES = [...new Set([...DOCKER_CE_PACKAGES, ...DOCKER_CE_CONFLICTS])]

/** Pinned packages: the engine and its CLI carry Docker's version; the rest version on their own. */
const PINNED = {docker: ['docker-ce', 'docker-ce-cli'], distro: ['docker.io'], offline: []}

/** What detection found. */
export interface EngineFacts {
  /** Path of dockerd when the engine is installed (a `docker` client alone does not count). */
  dockerd?: string
  /** A `docker` client is installed (the daemon is useless to the action and jobs without one). */
  client: boolean
  /** Installed versions of WATCHED_PACKAGES. */
  installed: Map<string, string>
  held: Set<string>
  /** Docker installed as a snap (breaks the NVIDIA runtime). */
  snap: boolean
  /** Server version when the daemon answers. */
  serverVersion?: string
  manager: ServiceManager
  /** systemd hosts: docker.service enabled at boot. */
  enabled?: boolean
  /** pid of a dockerd this action spawned itself, still running. */
  ownDockerdPid?: number
  /** Members of the `docker` group; undefined when the group does not exist. */
  dockerGroup?: string[]
  /** Candidate versions in the package lists, for the packages the source would install. */
  candidates: Map<string, string | undefined>
  /** Control data of the .deb files in offline-debs. */
  debs: DebInfo[]
  /** Offline installs: every installed package name and what installed packages provide. */
  provided: Set<string>
}

/** One change the engine phase makes, in the order it makes them. */
export type EngineAction =
  | {kind: 'stop-own-dockerd'; pid: number}
  | {kind: 'unhold'; packages: string[]}
  | {kind: 'docker-repo'; url: string}
  | {kind: 'apt-update'}
  | {kind: 'remove'; packages: string[]}
  | {
      kind: 'install'
      packages: string[]
      pin?: string
      pinned: string[]
      /** Installed too when the package lists have them (checked right before installing). */
      ifAvailable?: string[]
      /** Its recommends are installed too (read from the package lists right before installing). */
      recommendsOf?: string
    }
  | {kind: 'install-debs'; files: string[]}
  | {kind: 'hold'; packages: string[]}
  | {kind: 'start'}
  | {kind: 'enable'}
  | {kind: 'create-group'}
  | {kind: 'add-users'; users: string[]}

/** The engine phase's plan: its actions, and whether packages change. */
export interface EnginePlan extends PhasePlan {
  actions: EngineAction[]
  /** Packages change in this plan (drives the `docker-changed` output). */
  packagesChange: boolean
}

/** The packages `source` installs, given the offline folder's contents. */
function sourcePackages(source: DockerSource, debs: readonly DebInfo[]): string[] {
  if (source === 'docker') return DOCKER_CE_PACKAGES
  if (source === 'distro') return DISTRO_PACKAGES
  const names = new Set(debs.map(d => d.name))
  if (names.has('docker-ce')) return DOCKER_CE_PACKAGES.filter(n => names.has(n))
  if (names.has('docker.io')) return [...DISTRO_PACKAGES, DISTRO_CLIENT].filter(n => names.has(n))
  return []
}

/** The packages of the other source that must go before `wanted` is installed. */
function conflictsFor(wanted: readonly string[]): string[] {
  return wanted.includes('docker-ce') ? DOCKER_CE_CONFLICTS : DOCKER_CE_PACKAGES
}

/** One line per action, for the log, the dry run and the summary. */
export function describe(action: EngineAction): string {
  switch (action.kind) {
    case 'stop-own-dockerd':
      return `stop the dockerd this action started (pid ${action.pid}) before changing packages`
    case 'unhold':
      return `release the apt hold on ${action.packages.join(', ')}`
    case 'docker-repo':
      return `add Docker's apt repository ${action.url} (key in /etc/apt/keyrings, signed-by source)`
    case 'apt-update':
      return 'refresh the package lists (apt-get update)'
    case 'remove':
      return `remove conflicting packages (not purged): ${action.packages.join(', ')}`
    case 'install':
      return `install ${action.packages.join(', ')}${action.pin ? ` at version ${action.pin}` : ''}${action.ifAvailable?.length ? ` (and ${action.ifAvailable.join(', ')} where the distribution ships it apart)` : ''}${action.recommendsOf ? ` (and what ${action.recommendsOf} recommends)` : ''}`
    case 'install-debs':
      return `install ${action.files.length} .deb file(s) from offline-debs: ${action.files.map(f => f.split('/').pop()).join(', ')}`
    case 'hold':
      return describeHold(action.packages)
    case 'start':
      return 'start Docker'
    case 'enable':
      return 'enable docker.service at boot'
    case 'create-group':
      return "create the 'docker' group"
    case 'add-users':
      return `add ${action.users.join(', ')} to the 'docker' group (takes effect in new logins; restart the runner service for its jobs to get it)`
  }
}

/** Is the installed engine the one `source` at `pin` (or the newest candidate) gives? */
function engineMatches(
  facts: EngineFacts,
  wanted: readonly string[],
  source: DockerSource,
  pin: string | undefined
): boolean {
  if (source === 'offline') {
    return facts.debs
      .filter(d => wanted.includes(d.name))
      .every(d => facts.installed.get(d.name) === d.version)
  }
  const pinned: readonly string[] = PINNED[source]
  return wanted.every(name => {
    const installed = facts.installed.get(name)
    if (installed === undefined) return false
    if (pin !== undefined && pinned.includes(name)) return versionMatchesPin(installed, pin)
    const candidate = facts.candidates.get(name)
    return pin !== undefined || candidate === undefined || candidate === installed
  })
}

/** Whether packages change: a missing engine (unless install-docker is false), or one that differs. */
function installDecision(
  facts: EngineFacts,
  inputs: EngineInputs,
  wanted: readonly string[]
): {install: boolean; warning?: string} {
  if (facts.snap) {
    if (inputs.installDocker !== 'false') throw new HostError(SNAP_ENGINE)
    return {install: false}
  }
  if (!facts.dockerd) {
    if (inputs.installDocker === 'false') {
      throw new HostError(
        'Docker Engine is not installed (no dockerd) and install-docker is false: set install-docker to auto or true, or install Docker first.'
      )
    }
    return {install: true}
  }
  if (
    inputs.installDocker === 'true' &&
    !engineMatches(facts, wanted, inputs.dockerSource, inputs.dockerVersion)
  ) {
    return {
      install: true,
      warning:
        'install-docker is true and the installed engine differs from the one asked for: packages change and running containers restart.'
    }
  }
  return {install: false}
}

/** What must stop or go before new packages go in: our own dockerd, holds, conflicting packages. */
function replaceActions(facts: EngineFacts, remove: string[], wanted: string[]): EngineAction[] {
  const held = [...remove, ...wanted].filter(n => facts.held.has(n))
  const replace: EngineAction[] = []
  if (facts.ownDockerdPid !== undefined) {
    replace.push({kind: 'stop-own-dockerd', pid: facts.ownDockerdPid})
  }
  if (held.length > 0) replace.push({kind: 'unhold', packages: held})
  if (remove.length > 0) replace.push({kind: 'remove', packages: remove})
  return replace
}

/**
 * Holds after an install: the pinned packages, and the holds the host had on what was installed
 * (an admin's hold lifted for the install is put back).
 */
function holdAfter(
  facts: EngineFacts,
  wanted: readonly string[],
  pinned: readonly string[]
): EngineAction[] {
  const packages = [...new Set([...pinned, ...wanted.filter(n => facts.held.has(n))])]
  return packages.length > 0 ? [{kind: 'hold', packages}] : []
}

/** Installing from offline-debs: the dependency closure within the folder, or what it lacks. */
function offlineInstall(
  facts: EngineFacts,
  inputs: EngineInputs,
  wanted: string[],
  remove: string[]
): EngineAction[] {
  const provided = new Set([...facts.provided].filter(n => !remove.includes(n)))
  const {files, missing} = closeDebSet(wanted, facts.debs, provided)
  if (missing.length > 0) {
    throw new HostError(
      `offline-debs (${inputs.offlineDebs}) lacks dependencies that are not installed either: ${missing.join(', ')}. Add their .deb files (apt-get download NAME on a connected host).`
    )
  }
  return [
    ...replaceActions(facts, remove, wanted),
    {kind: 'install-debs', files: files.map(f => f.file)},
    ...holdAfter(facts, wanted, [])
  ]
}

/**
 * Installing from apt. Stopping and removing come after the repository and the lists: pins are
 * checked against those first, so a bad pin fails while the engine still runs.
 */
function aptInstallActions(
  facts: EngineFacts,
  inputs: EngineInputs,
  wanted: string[],
  remove: string[],
  dockerAptUrl: string | undefined
): EngineAction[] {
  const {dockerSource: source, dockerVersion: pin} = inputs
  const actions: EngineAction[] = []
  if (source === 'docker') {
    if (!dockerAptUrl) {
      throw new HostError(
        'Docker publishes no apt repository for this distribution: set docker-apt-url, or use docker-source: distro.'
      )
    }
    actions.push({kind: 'docker-repo', url: dockerAptUrl}, {kind: 'apt-update'})
  } else if (
    pin !== undefined ||
    inputs.installDocker === 'true' ||
    wanted.some(n => facts.candidates.get(n) === undefined)
  ) {
    actions.push({kind: 'apt-update'})
  }
  const pinned: string[] = PINNED[source]
  actions.push(...replaceActions(facts, remove, wanted), {
    kind: 'install',
    packages: wanted,
    pin,
    pinned,
    // Docker's own install runs with recommends: pigz (faster layer decompression), git (builds
    // from git URLs), docker-ce-rootless-extras. Debian's docker.io recommends needrestart and
    // more, so that one gets only what the engine needs by name.
    ...(source === 'distro' ? {ifAvailable: [DISTRO_CLIENT]} : {recommendsOf: 'docker-ce'})
  })
  actions.push(...holdAfter(facts, wanted, pin !== undefined ? pinned : []))
  return actions
}

/** Every action that changes packages: what goes, what comes, from where. */
function installActions(
  facts: EngineFacts,
  inputs: EngineInputs,
  wanted: string[],
  dockerAptUrl: string | undefined
): EngineAction[] {
  if (inputs.dockerSource === 'offline' && wanted.length === 0) {
    throw new HostError(
      `offline-debs (${inputs.offlineDebs}) holds no docker-ce or docker.io package: add the engine's .deb files (apt-get download docker.io containerd runc …).`
    )
  }
  const remove = conflictsFor(wanted).filter(n => facts.installed.has(n))
  return inputs.dockerSource === 'offline'
    ? offlineInstall(facts, inputs, wanted, remove)
    : aptInstallActions(facts, inputs, wanted, remove, dockerAptUrl)
}

const CLIENT_HINT =
  'install the docker client (Debian 13 and later ship it as docker-cli: sudo apt-get install docker-cli)'

/** An engine without a `docker` client (docker.io installed without its recommends): the client's package. */
function clientActions(facts: EngineFacts, inputs: EngineInputs): EngineAction[] {
  if (facts.dockerd === undefined || facts.client || facts.snap) return []
  if (inputs.installDocker === 'false') {
    throw new HostError(
      `dockerd is installed but there is no docker client, and install-docker is false: ${CLIENT_HINT}.`
    )
  }
  const name = facts.installed.has('docker-ce') ? 'docker-ce-cli' : DISTRO_CLIENT
  if (inputs.dockerSource === 'offline') {
    const {files, missing} = closeDebSet([name], facts.debs, facts.provided)
    if (missing.length > 0) {
      throw new HostError(
        `dockerd is installed but there is no docker client, and offline-debs (${inputs.offlineDebs}) lacks ${missing.join(', ')}: add their .deb files.`
      )
    }
    return [{kind: 'install-debs', files: files.map(f => f.file)}]
  }
  const update = facts.candidates.get(name) === undefined ? [{kind: 'apt-update' as const}] : []
  return [...update, {kind: 'install', packages: [name], pinned: []}]
}

/** A running, enabled engine and the users in its group. */
function serviceActions(
  facts: EngineFacts,
  install: boolean,
  users: readonly string[]
): EngineAction[] {
  const actions: EngineAction[] = []
  if (facts.snap && facts.serverVersion === undefined) {
    throw new HostError(
      'Docker from the snap does not answer: start it (sudo snap start docker) and run again; this action starts only the engines it installs from apt.'
    )
  } else if (!facts.snap) {
    if (install || facts.serverVersion === undefined) actions.push({kind: 'start'})
    if (facts.manager === 'systemd' && facts.enabled !== true) actions.push({kind: 'enable'})
  }
  if (facts.dockerGroup === undefined && !install) actions.push({kind: 'create-group'})
  const members = new Set(facts.dockerGroup ?? [])
  const missingUsers = users.filter(u => !members.has(u))
  if (missingUsers.length > 0) actions.push({kind: 'add-users', users: missingUsers})
  return actions
}

/** What detection found, in one line. */
function describeFound(facts: EngineFacts): string {
  if (facts.snap)
    return `Docker from a snap, ${facts.serverVersion ? `${facts.serverVersion} running` : 'not running'}`
  return facts.dockerd
    ? `Docker ${facts.serverVersion ?? describeInstalled(facts)} (${engineSource(facts)}), ${facts.serverVersion ? 'running' : facts.client ? 'not running' : 'no docker client'}, service: ${facts.manager}`
    : `no Docker Engine (dockerd missing)${facts.installed.size ? `; packages: ${[...facts.installed.keys()].join(', ')}` : ''}`
}

/** A snap's engine and one from apt would fight over /var/run/docker.sock: never both. */
const SNAP_ENGINE =
  "Docker is installed as a snap (/snap/bin/docker). Installing Docker from apt beside it would leave two engines fighting over /var/run/docker.sock, and the NVIDIA toolkit's .deb packages break the snap's own GPU support. Either remove the snap (sudo snap remove docker) and run again, or set install-docker: false (and gpu-runtime: none) to use the snap's engine as it is: it reads /var/snap/docker/current/config/daemon.json, which this action does not write."

/**
 * Plans the engine phase from facts (pure). An engine that is already right plans no action.
 * Throws HostError for states the action will not change on its own.
 */
export function planEngine(
  facts: EngineFacts,
  inputs: EngineInputs,
  dockerAptUrl: string | undefined,
  users: readonly string[]
): EnginePlan {
  const wanted = sourcePackages(inputs.dockerSource, facts.debs)
  const {install, warning} = installDecision(facts, inputs, wanted)
  const actions = [
    ...(install
      ? installActions(facts, inputs, wanted, dockerAptUrl)
      : clientActions(facts, inputs)),
    ...serviceActions(facts, install, users)
  ]
  return {
    found: describeFound(facts),
    actions,
    steps: actions.map(a => ({description: describe(a)})),
    packagesChange: install,
    warnings: warning ? [warning] : []
  }
}

/**
 * Does the daemon that answers run the engine the packages installed? Compares versions without
 * packaging suffixes (`20.10.24+dfsg1` is docker.io's `20.10.24+dfsg1-1+deb12u1`, `27.3.1` is
 * docker-ce's `5:27.3.1-1~ubuntu.24.04~noble`).
 */
export function serverMatchesPackage(server: string, packageVersion: string): boolean {
  const core = (v: string) => upstreamVersion(v).replace(/[+~].*$/, '')
  return core(server) === core(packageVersion)
}

/** The installed engine package's version (docker-ce, else docker.io). */
export function engineVersion(installed: ReadonlyMap<string, string>): string | undefined {
  return installed.get('docker-ce') ?? installed.get('docker.io')
}

function describeInstalled(facts: EngineFacts): string {
  return engineVersion(facts.installed) ?? 'installed'
}

/** Which source the installed engine came from. */
export function engineSource(facts: Pick<EngineFacts, 'installed' | 'snap'>): string {
  if (facts.installed.has('docker-ce')) return 'docker-ce'
  if (facts.installed.has('docker.io')) return 'docker.io'
  if (facts.snap) return 'snap'
  return 'not from apt'
}

/** Members of `group` in /etc/group text; undefined when the group does not exist. */
export function groupMembers(etcGroup: string, group: string): string[] | undefined {
  for (const line of etcGroup.split('\n')) {
    const [name, , , members] = line.split(':')
    if (name === group)
      return (members ?? '')
        .split(',')
        .map(s => s.trim())
        .filter(Boolean)
  }
  return undefined
}

/** The users to add to the docker group: docker-users, else the runner's user when it is not root. */
export function dockerUsers(inputs: Pick<EngineInputs, 'dockerUsers'>, user: string): string[] {
  if (inputs.dockerUsers !== undefined) return inputs.dockerUsers
  return user === 'root' || user === '' ? [] : [user]
}

/** Where Docker's repository key is written (signed-by names it). */
export const DOCKER_KEYRING = '/etc/apt/keyrings/docker.asc'
/** The apt source file this action writes for Docker's repository. */
export const DOCKER_LIST = '/etc/apt/sources.list.d/docker.list'

/** The one-line apt source for Docker's repository. */
export function dockerSourceLine(url: string, arch: string, codename: string): string {
  return `deb [arch=${arch} signed-by=${DOCKER_KEYRING}] ${url} ${codename} stable\n`
}

/** Docker's repository named by sources other than ours, and how each is set aside. */
export function staleDockerSources(files: readonly SourceFile[], url: string): SourceFix[] {
  return staleSourceFixes(
    files.filter(f => f.path !== DOCKER_LIST),
    url,
    ['download.docker.com']
  )
}
