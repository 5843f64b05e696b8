/** The registry phase's plan (pure): what to load, write, create and run, from what detection found. */
import {HostError} from '../../errors.js'
import type {HostIdentity} from '../../host.js'
import type {PhasePlan, Step} from '../pipeline.js'
import type {RegistrySettings} from './inputs.js'
import {
  AUTH_FILE,
  containerAction,
  insecureRegistry,
  isThisHost,
  mirrorSpec,
  registryBind,
  registryPort,
  registrySpec,
  type ContainerAction,
  type ContainerState
} from './spec.js'

/** Hashes of the registry's htpasswd (as installed) and TLS files (as given). */
export type FileHashes = Parameters<typeof registrySpec>[2]

/** What detection found. */
export interface RegistryFacts {
  /** This host's names and addresses. */
  me: HostIdentity
  wanted: boolean
  dockerUp: boolean
  imageId?: string
  htpasswdOk: boolean
  certOk: boolean
  registry?: ContainerState
  mirror?: ContainerState
  /** Hashes of the registry's files as they are now (the spec's hash covers them). */
  fileHashes: FileHashes
  dataDirs: Record<string, boolean>
  /** Who holds a port we need, when something other than our container does. */
  portHolders: Record<number, string | undefined>
}

/** The registry phase's plan: the image, the files, the folders and each container's action. */
export interface RegistryPlan extends PhasePlan {
  facts: RegistryFacts
  image?: 'load' | 'pull'
  writeHtpasswd: boolean
  installCert: boolean
  makeDirs: string[]
  registry?: ContainerAction
  mirror?: ContainerAction
}

/** Where this host's daemon looks for the registry's CA: /etc/docker/certs.d/<host:port>/ca.crt. */
export function daemonCaPath(inputs: Pick<RegistrySettings, 'registry' | 'registryTls'>): string {
  return `/etc/docker/certs.d/${inputs.registry.host}:${registryPort(inputs)}/ca.crt`
}

/** Where the image comes from when it is not on the host: the archive, or a pull (never when air-gapped). */
function imageSource(facts: RegistryFacts, inputs: RegistrySettings): RegistryPlan['image'] {
  if (facts.imageId !== undefined) return undefined
  if (inputs.registryImageArchive) return 'load'
  if (inputs.offlineDebs !== undefined) {
    throw new HostError(
      `registry-image ${inputs.registryImage} is not on this host, and offline-debs means nothing is pulled: give registry-image-archive (a docker save tar).`
    )
  }
  return 'pull'
}

/** The steps that prepare image, files and folders, before any container changes. */
function preparationSteps(plan: Omit<RegistryPlan, 'steps'>, inputs: RegistrySettings): Step[] {
  const steps: Step[] = []
  if (plan.image === 'load') {
    steps.push({description: `load ${inputs.registryImage} from ${inputs.registryImageArchive}`})
  } else if (plan.image === 'pull') steps.push({description: `pull ${inputs.registryImage}`})
  if (plan.writeHtpasswd) {
    const users = inputs.registryHtpasswd.map(e => e.user).join(', ')
    steps.push({description: `write ${AUTH_FILE} (bcrypt) for ${users}`})
  }
  if (plan.installCert) {
    steps.push({
      description: `install the TLS certificate for the registry and for this host's daemon (${daemonCaPath(inputs)})`
    })
  }
  if (plan.makeDirs.length > 0) steps.push({description: `create ${plan.makeDirs.join(', ')}`})
  return steps
}

/** Keep, start, create or recreate each container; new files or a new image make it again. */
function containerActions(
  facts: RegistryFacts,
  inputs: RegistrySettings,
  newImage: boolean,
  newFiles: boolean
): Pick<RegistryPlan, 'registry' | 'mirror'> {
  const current = containerAction(
    registrySpec(inputs, facts.imageId ?? '', facts.fileHashes),
    facts.registry
  )
  const renew = newImage || newFiles
  const registry: ContainerAction = renew && current !== 'create' ? 'recreate' : current
  const spec = mirrorSpec(inputs, facts.imageId ?? '')
  if (!spec) return {registry}
  const m = containerAction(spec, facts.mirror)
  return {registry, mirror: newImage && m !== 'create' ? 'recreate' : m}
}

/** One step per container that changes; a port another process holds fails before any change. */
function containerSteps(
  facts: RegistryFacts,
  inputs: RegistrySettings,
  actions: Pick<RegistryPlan, 'registry' | 'mirror'>
): Step[] {
  const steps: Step[] = []
  for (const [what, action, port] of [
    ['registry', actions.registry, registryPort(inputs)],
    ['pull-through mirror', actions.mirror, inputs.registryMirrorPort]
  ] as const) {
    if (action === undefined || action === 'keep') continue
    const holder = facts.portHolders[port]
    if (holder) {
      throw new HostError(
        `Port ${port} is taken by ${holder}: the ${what} cannot publish on it. Stop that, or choose another port (${what === 'registry' ? 'registry: host:PORT' : 'registry-mirror-port'}).`
      )
    }
    steps.push({
      description: `${action} the ${what} container (${what === 'registry' ? `${registryBind(inputs)}:${registryPort(inputs)}` : `127.0.0.1:${port}`}, data kept in ${what === 'registry' ? inputs.registryData : `${inputs.registryData}-mirror`})`
    })
  }
  return steps
}

/** Why no local registry runs here, in the words of the inputs that decide it. */
function notWantedReason(facts: RegistryFacts, inputs: RegistrySettings): string {
  const registry = inputs.registry.text
  if (inputs.startRegistry === 'false') {
    return `not started here (registry ${registry} is managed elsewhere: start-registry is false)`
  }
  if (!isThisHost(inputs.registry.host, facts.me)) {
    return `not started here (registry ${registry} is not this host)`
  }
  return `not started: nothing asks for one (no images to push, no auth, TLS or mirror; start-registry: true runs ${registry} anyway)`
}

/** What a plan that does nothing says: not wanted here, or Docker not running yet (a dry run). */
function idlePlan(facts: RegistryFacts, inputs: RegistrySettings): RegistryPlan {
  const base = {facts, writeHtpasswd: false, installCert: false, makeDirs: [], warnings: []}
  if (!facts.wanted) return {...base, steps: [], found: notWantedReason(facts, inputs)}
  return {
    ...base,
    found: 'Docker is not running yet',
    steps: [
      {description: `run the local registry ${inputs.registry.text} (${inputs.registryImage})`}
    ]
  }
}

/**
 * Plans the registry phase from facts (pure): image, files, data folders and the containers'
 * keep / start / create / recreate. Throws HostError for what it will not do (a port another
 * process holds, an image it may not pull, a container it did not make).
 */
export function planRegistry(facts: RegistryFacts, inputs: RegistrySettings): RegistryPlan {
  if (!facts.wanted || !facts.dockerUp) return idlePlan(facts, inputs)
  const warnings = insecureRegistry(inputs, facts.me)
    ? [
        `${inputs.registry.text} is served over plain HTTP: it is in this host's insecure-registries, and every other machine that pulls from it needs the same (or give registry-tls-cert and registry-tls-key).`
      ]
    : []
  const image = imageSource(facts, inputs)
  const writeHtpasswd = !facts.htpasswdOk
  const installCert = !facts.certOk
  const makeDirs = Object.entries(facts.dataDirs)
    .filter(([, ok]) => !ok)
    .map(([d]) => d)
  const actions = containerActions(facts, inputs, image !== undefined, writeHtpasswd || installCert)
  const prepared = {facts, image, writeHtpasswd, installCert, makeDirs, warnings, found: ''}
  const steps = [...preparationSteps(prepared, inputs), ...containerSteps(facts, inputs, actions)]
  const found = facts.registry
    ? `registry container ${facts.registry.running ? 'running' : 'stopped'}${actions.registry === 'keep' ? ', as configured' : ', configuration differs'}`
    : 'no registry container'
  return {...prepared, ...actions, found, steps}
}
