/** The host's facts, read once before the phases: distribution, user, systemd, identity, Docker's socket and client config. */
import {promises as fs} from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {exists} from './system/files.js'
import {parseOsRelease, type OsRelease} from './system/os-release.js'

/** This host's names and addresses, to tell whether an address such as `registry` points here. */
export interface HostIdentity {
  names: string[]
  addresses: string[]
  /**
   * The addresses of interfaces other than those Docker makes and removes (docker0, br-*, veth*):
   * the same from run to run, so a list made of them (no-proxy) does not change when Docker starts.
   */
  fixedAddresses?: string[]
}

/** Interfaces that come and go with Docker, its networks and its containers. */
const DOCKER_INTERFACES = /^(docker|br-|veth|virbr|cni|flannel|cali|vxlan|tunl|weave)/

/** Facts about the host the action runs on, read once before the phases. */
export interface HostInfo {
  os: OsRelease
  isRoot: boolean
  /** The user the runner runs as (SUDO_USER when run under sudo, else the current user). */
  user: string
  /** systemd is PID 1 (`/run/systemd/system` exists), not merely installed. */
  systemd: boolean
  /** Folder for this job's temporary files (RUNNER_TEMP or the OS temp dir). */
  tempDir: string
  identity: HostIdentity
  /**
   * The daemon's unix socket as DOCKER_HOST names it (or the default), for reading the Engine API
   * without a docker process; undefined when the daemon is reached another way (tcp, ssh, a context).
   */
  dockerSocket?: string
  /** The Docker client config folder a `docker` of this job reads (DOCKER_CONFIG, else ~/.docker). */
  dockerConfigDir?: string
}

/**
 * The socket the action's docker commands reach, when it is a unix socket on this host. Not root,
 * they run under sudo, which drops DOCKER_HOST and DOCKER_CONTEXT: a runner that sets either
 * (rootless Docker) gets none here, so that every question goes to the daemon sudo reaches.
 */
export function dockerSocketOf(env: NodeJS.ProcessEnv, isRoot = true): string | undefined {
  const host = env.DOCKER_HOST ?? ''
  const context = env.DOCKER_CONTEXT ?? ''
  if (!isRoot && (host !== '' || context !== '')) return undefined
  if (context !== '' && context !== 'default') return undefined
  if (host === '') return '/var/run/docker.sock'
  return host.startsWith('unix://') ? host.slice('unix://'.length) : undefined
}

/** This host's name and network addresses (reads os.hostname and the interfaces; changes nothing). */
export function hostIdentity(): HostIdentity {
  const names = [os.hostname()]
  const interfaces = Object.entries(os.networkInterfaces()).flatMap(([name, list]) =>
    (list ?? []).map(a => ({name, address: a.address}))
  )
  return {
    names,
    addresses: interfaces.map(i => i.address),
    fixedAddresses: interfaces.filter(i => !DOCKER_INTERFACES.test(i.name)).map(i => i.address)
  }
}

/** Reads the facts every phase shares: distribution, user, root or not, systemd or not, identity. */
/**
 * The run's scratch folder: the runner's RUNNER_TEMP, else (a run by hand) a new 0700 folder of this
 * process under the system's temp folder, never a fixed name in world-writable /tmp that another
 * local user could prepare for root.
 */
export async function privateTempDir(env = process.env): Promise<string> {
  if (env.RUNNER_TEMP) return env.RUNNER_TEMP
  return fs.mkdtemp(path.join(os.tmpdir(), 'docker-gpu-setup-'))
}

export async function readHost(env = process.env): Promise<HostInfo> {
  const text = await fs
    .readFile('/etc/os-release', 'utf8')
    .catch(() => fs.readFile('/usr/lib/os-release', 'utf8'))
    .catch(() => '')
  const isRoot = process.getuid?.() === 0
  const current = os.userInfo().username
  return {
    os: parseOsRelease(text),
    isRoot,
    user: isRoot ? (env.SUDO_USER ?? 'root') : current,
    systemd: await exists('/run/systemd/system'),
    tempDir: await privateTempDir(env),
    identity: hostIdentity(),
    dockerSocket: dockerSocketOf(env, isRoot),
    dockerConfigDir: env.DOCKER_CONFIG || path.join(os.homedir(), '.docker')
  }
}
