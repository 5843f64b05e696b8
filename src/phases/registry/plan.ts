/** The registry phase's plan (pure): what to load, write, create and run, from what detection found. */
import {HostError} from '../../errors.js'
import type {HostIdentity} from '../../host.js'
import type {PhasePlan, Step} from '../pipeline.js'
import type {RegistrySettings} from './inputs.js'
import {
  AUTH_FILE,
  cacheSpecs,
  containerAction,
  insecureRegistry,
  isThisHost,
  LABEL_MANAGED,
  mirrorSpec,
  REGISTRY_CONTAINER,
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
  /** The htpasswd file is readable by users other than root (as releases before 0600 wrote it). */
  htpasswdOpen?: boolean
  certOk: boolean
  registry?: ContainerState
  mirror?: ContainerState
  /** Hashes of the registry's files as they are now (the spec's hash covers them). */
  fileHashes: FileHashes
  dataDirs: Record<string, boolean>
  /** Who holds a port we need, when something other than our container does. */
  portHolders: Record<number, string | undefined>
  /** The container of each cache of registry-caches, by name (undefined: none yet). */
  caches?: Record<string, ContainerState | undefined>
}

/** The registry phase's plan: the image, the files, the folders and each container's action. */
export interface RegistryPlan extends PhasePlan {
  facts: RegistryFacts
  image?: 'load' | 'pull'
  writeHtpasswd: boolean
  /** Only the mode of a right htpasswd file is wrong: closed to everyone but root (0600). */
  closeHtpasswd: boolean
  installCert: boolean
  makeDirs: string[]
  registry?: ContainerAction
  mirror?: ContainerAction
  /** What each cache's container needs, by name. */
  caches: Record<string, ContainerAction>
  /** What serves `registry` already and is kept as it is (this step does not say how it runs). */
  kept?: string
  /** The kept registry container is stopped: started as it is, its settings untouched. */
  startKept?: boolean
}

type Actions = Pick<RegistryPlan, 'registry' | 'mirror' | 'caches'>

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
function preparationSteps(
  plan: Pick<
    RegistryPlan,
    'image' | 'writeHtpasswd' | 'closeHtpasswd' | 'installCert' | 'makeDirs'
  >,
  inputs: RegistrySettings
): Step[] {
  const steps: Step[] = []
  if (plan.image === 'load') {
    steps.push({description: `load ${inputs.registryImage} from ${inputs.registryImageArchive}`})
  } else if (plan.image === 'pull') steps.push({description: `pull ${inputs.registryImage}`})
  if (plan.writeHtpasswd) {
    const users = inputs.registryHtpasswd.map(e => e.user).join(', ')
    steps.push({description: `write ${AUTH_FILE} (bcrypt) for ${users}`})
  }
  if (plan.closeHtpasswd) {
    steps.push({description: `make ${AUTH_FILE} readable by root alone (0600)`})
  }
  if (plan.installCert) {
    steps.push({
      description: `install the TLS certificate for the registry and for this host's daemon (${daemonCaPath(inputs)})`
    })
  }
  if (plan.makeDirs.length > 0) steps.push({description: `create ${plan.makeDirs.join(', ')}`})
  return steps
}

/** A container's action, made `recreate` when its image is new (a new image under the same tag). */
function renewed(action: ContainerAction, renew: boolean): ContainerAction {
  return renew && action !== 'create' ? 'recreate' : action
}

/** Keep, start, create or recreate each container; new files or a new image make it again. */
function containerActions(
  facts: RegistryFacts,
  inputs: RegistrySettings,
  newImage: boolean,
  newFiles: boolean
): Actions {
  const id = facts.imageId ?? ''
  const caches = Object.fromEntries(
    cacheSpecs(inputs, id).map(spec => [
      spec.name,
      renewed(containerAction(spec, facts.caches?.[spec.name]), newImage)
    ])
  )
  if (!facts.wanted) return {caches}
  const registry = renewed(
    containerAction(registrySpec(inputs, id, facts.fileHashes), facts.registry),
    newImage || newFiles
  )
  const spec = mirrorSpec(inputs, id)
  if (!spec) return {registry, caches}
  return {registry, mirror: renewed(containerAction(spec, facts.mirror), newImage), caches}
}

/** Each container the plan may change: what it is, its action, address, data and port input. */
function containerRows(
  inputs: RegistrySettings,
  actions: Actions
): {
  what: string
  action?: ContainerAction
  port: number
  at: string
  data: string
  input: string
}[] {
  return [
    {
      what: 'registry',
      action: actions.registry,
      port: registryPort(inputs),
      at: `${registryBind(inputs)}:${registryPort(inputs)}`,
      data: inputs.registryData,
      input: 'registry: host:PORT'
    },
    {
      what: 'pull-through mirror',
      action: actions.mirror,
      port: inputs.registryMirrorPort,
      at: `127.0.0.1:${inputs.registryMirrorPort}`,
      data: `${inputs.registryData}-mirror`,
      input: 'registry-mirror-port'
    },
    ...cacheSpecs(inputs, '').map((spec, i) => ({
      what: `pull-through cache of ${inputs.registryCaches[i].upstream}`,
      action: actions.caches[spec.name],
      port: spec.hostPort,
      at: `127.0.0.1:${spec.hostPort}`,
      data: spec.mounts[0].source,
      input: 'registry-cache-port'
    }))
  ]
}

/** One step per container that changes; a port another process holds fails before any change. */
function containerSteps(facts: RegistryFacts, inputs: RegistrySettings, actions: Actions): Step[] {
  const steps: Step[] = []
  for (const row of containerRows(inputs, actions)) {
    if (row.action === undefined || row.action === 'keep') continue
    const holder = facts.portHolders[row.port]
    if (holder) {
      throw new HostError(
        `Port ${row.port} is taken by ${holder}: the ${row.what} cannot publish on it. Stop that, or choose another port (${row.input}).`
      )
    }
    steps.push({
      description: `${row.action} the ${row.what} container (${row.at}, data kept in ${row.data})`
    })
  }
  return steps
}

/**
 * The registry this step keeps as it is: the action's own container, running on `registry`'s port
 * with other settings, when this step does not say how its registry runs (start-registry auto,
 * every container input at its default). Undefined when this step manages the registry. Another
 * process on that port is not taken for a registry: the plan names it and changes nothing.
 */
function keptRegistry(facts: RegistryFacts, inputs: RegistrySettings): string | undefined {
  const found = facts.registry
  if (!facts.wanted || !facts.dockerUp || inputs.configured || !found) return undefined
  if (found.labels[LABEL_MANAGED] !== 'true' || found.hostPort !== registryPort(inputs)) {
    return undefined
  }
  const spec = registrySpec(inputs, facts.imageId ?? '', facts.fileHashes)
  // Stopped or running, its own settings stand: this step's defaults would drop its auth and TLS.
  return ['keep', 'start'].includes(containerAction(spec, found))
    ? undefined
    : `the ${found.running ? 'running' : 'stopped'} registry container ${REGISTRY_CONTAINER}`
}

/** Why no local registry runs here, in the words of the inputs that decide it. */
function notWantedReason(facts: RegistryFacts, inputs: RegistrySettings, kept?: string): string {
  const registry = inputs.registry.text
  if (kept !== undefined) {
    return `${registry} is served by ${kept}: kept as it is (this step sets none of its inputs)`
  }
  if (inputs.startRegistry === 'false') {
    return `not started here (registry ${registry} is managed elsewhere: start-registry is false)`
  }
  if (!isThisHost(inputs.registry.host, facts.me)) {
    return `not started here (registry ${registry} is not this host)`
  }
  return `not started: nothing asks for one (no images to push, no auth, TLS or mirror; start-registry: true runs ${registry} anyway)`
}

/** What a plan that does nothing says: not wanted here, or Docker not running yet (a dry run). */
function idlePlan(facts: RegistryFacts, inputs: RegistrySettings, kept?: string): RegistryPlan {
  const base = {
    facts,
    writeHtpasswd: false,
    closeHtpasswd: false,
    installCert: false,
    makeDirs: [],
    warnings: []
  }
  if (!facts.wanted && inputs.registryCaches.length === 0) {
    return {...base, caches: {}, steps: [], found: notWantedReason(facts, inputs, kept)}
  }
  const caches = inputs.registryCaches.map(c => ({
    description: `run the pull-through cache of ${c.upstream} on localhost:${c.port} (${inputs.registryImage})`
  }))
  return {
    ...base,
    caches: {},
    found: 'Docker is not running yet',
    steps: [
      ...(facts.wanted
        ? [
            {
              description: `run the local registry ${inputs.registry.text} (${inputs.registryImage})`
            }
          ]
        : []),
      ...caches
    ]
  }
}

/** What was found, in one line: the registry container (or why there is none), and the caches. */
function describeFound(
  facts: RegistryFacts,
  inputs: RegistrySettings,
  actions: Actions,
  kept: string | undefined
): string {
  const registry = !facts.wanted
    ? notWantedReason(facts, inputs, kept)
    : facts.registry
      ? `registry container ${facts.registry.running ? 'running' : 'stopped'}${actions.registry === 'keep' ? ', as configured' : ', configuration differs'}`
      : 'no registry container'
  const names = Object.keys(actions.caches)
  if (names.length === 0) return registry
  const ready = names.filter(n => actions.caches[n] === 'keep').length
  return `${registry}; ${ready} of ${names.length} pull-through cache(s) running as configured`
}

/**
 * Plans the registry phase from facts (pure): image, files, data folders and the containers'
 * keep / start / create / recreate: the registry and its mirror when it is wanted here, the caches
 * of registry-caches whenever they are set. Throws HostError for what it will not do (a port another
 * process holds, an image it may not pull, a container it did not make).
 */
export function planRegistry(detected: RegistryFacts, inputs: RegistrySettings): RegistryPlan {
  const kept = keptRegistry(detected, inputs)
  // A registry this step keeps as it is needs nothing of it: no container, image, file or folder.
  const facts: RegistryFacts =
    kept === undefined
      ? detected
      : {
          ...detected,
          wanted: false,
          dataDirs: Object.fromEntries(
            Object.entries(detected.dataDirs).filter(
              ([d]) => d !== inputs.registryData && d !== `${inputs.registryData}-mirror`
            )
          )
        }
  const startKept = kept !== undefined && detected.registry?.running === false
  const startStep = startKept
    ? [{description: `start ${kept} as it is (its settings untouched)`}]
    : []
  if (!facts.dockerUp || (!facts.wanted && inputs.registryCaches.length === 0)) {
    const idle = idlePlan(facts, inputs, kept)
    return {...idle, steps: [...startStep, ...idle.steps], kept, startKept}
  }
  const warnings = insecureRegistry(inputs, facts.me)
    ? [
        `${inputs.registry.text} is served over plain HTTP: it is in this host's insecure-registries, and every other machine that pulls from it needs the same (or give registry-tls-cert and registry-tls-key).`
      ]
    : []
  const image = imageSource(facts, inputs)
  const writeHtpasswd = !facts.htpasswdOk
  const closeHtpasswd = facts.htpasswdOpen === true && !writeHtpasswd
  const installCert = !facts.certOk
  const makeDirs = Object.entries(facts.dataDirs)
    .filter(([, ok]) => !ok)
    .map(([d]) => d)
  const actions = containerActions(facts, inputs, image !== undefined, writeHtpasswd || installCert)
  const prepared = {
    facts,
    image,
    writeHtpasswd,
    closeHtpasswd,
    installCert,
    makeDirs,
    warnings,
    found: ''
  }
  const steps = [
    ...startStep,
    ...preparationSteps(prepared, inputs),
    ...containerSteps(facts, inputs, actions)
  ]
  const found = describeFound(facts, inputs, actions, kept)
  return {...prepared, ...actions, found, steps, kept, startKept}
}
