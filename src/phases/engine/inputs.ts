/** The engine phase's inputs: their action.yml defaults, their type, and their parser (pure). */
import {
  existingPath,
  fail,
  oneOf,
  optional,
  packageVersion,
  splitList,
  tristate,
  url,
  type InputHost,
  type RawInputs,
  type Tristate
} from '../../input-fields.js'

/** The engine's inputs with their action.yml defaults. */
export const ENGINE_INPUTS = {
  'install-docker': 'auto',
  'docker-source': 'docker',
  'docker-version': '',
  'docker-apt-url': '',
  'offline-debs': '',
  'docker-users': ''
} as const

/** Where the engine's packages come from. */
export type DockerSource = 'docker' | 'distro' | 'offline'

/** What the engine phase reads. */
export interface EngineInputs {
  installDocker: Tristate
  dockerSource: DockerSource
  dockerVersion?: string
  /** Explicit `docker-apt-url`; undefined means "Docker's repository for this distribution". */
  dockerAptUrl?: string
  /** The air-gapped host's folder of .deb files (the daemon and registry phases read it too). */
  offlineDebs?: string
  /** Explicit `docker-users`; undefined means "the runner's user when it is not root". */
  dockerUsers?: string[]
}

const USER_NAME = /^[a-z_][a-z0-9_.-]{0,31}\$?$/

/** offline-debs and docker-source: offline go together. */
function offlineFolder(
  raw: RawInputs<keyof typeof ENGINE_INPUTS>,
  host: InputHost,
  source: DockerSource
): string | undefined {
  const folder = existingPath(raw, 'offline-debs', host, 'dir')
  if (folder !== undefined && source !== 'offline') {
    fail(
      'docker-source',
      source,
      'offline-debs is set, so the host is air-gapped: set docker-source: offline'
    )
  }
  if (source === 'offline' && folder === undefined) {
    fail('offline-debs', '', 'docker-source: offline needs offline-debs, a folder of .deb files')
  }
  return folder
}

function users(raw: RawInputs<'docker-users'>): string[] | undefined {
  if (optional(raw, 'docker-users') === undefined) return undefined
  return splitList(raw['docker-users']).map(({value}) => {
    if (!USER_NAME.test(value)) {
      fail('docker-users', value, 'use user names (lowercase, at most 32 characters)')
    }
    return value
  })
}

/** Validates the engine's inputs (pure apart from `host.pathKind`); throws InputError. */
export function parseEngineInputs(
  raw: RawInputs<keyof typeof ENGINE_INPUTS>,
  host: InputHost
): EngineInputs {
  const installDocker = tristate(raw, 'install-docker')
  const dockerSource = oneOf(raw, 'docker-source', ['docker', 'distro', 'offline'] as const)
  const dockerVersion = packageVersion(
    raw,
    'docker-version',
    'use a version such as 27.3.1 or 5:27.3.1-1~ubuntu.24.04~noble'
  )
  const dockerAptUrl = url(raw, 'docker-apt-url', ['http:', 'https:', 'file:'])
  const offlineDebs = offlineFolder(raw, host, dockerSource)
  const dockerUsers = users(raw)
  return {installDocker, dockerSource, dockerVersion, dockerAptUrl, offlineDebs, dockerUsers}
}
