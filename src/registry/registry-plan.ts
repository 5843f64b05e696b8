/** The registry phase's plan (pure): what to load, write, create and run, from what detection found. */
import {HostError} from '../errors.js'
import type {Inputs} from '../inputs.js'
import type {PhasePlan} from '../pipeline.js'
import {
  AUTH_FILE,
  containerAction,
  mirrorSpec,
  registryBind,
  registryFragments,
  registryPort,
  registrySpec,
  type ContainerAction,
  type ContainerState,
  type HostIdentity
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

export interface RegistryPlan extends PhasePlan {
  warnings: string[]
  facts: RegistryFacts
  image?: 'load' | 'pull'
  writeHtpasswd: boolean
  installCert: boolean
  makeDirs: string[]
  registry?: ContainerAction
  mirror?: ContainerAction
}

/** Where this host's daemon looks for the registry's CA: /etc/docker/certs.d/<host:port>/ca.crt. */
export function daemonCaPath(inputs: Inputs): string {
  return `/etc/docker/certs.d/${inputs.registry.host}:${registryPort(inputs)}/ca.crt`
}

/**
 * Plans the registry phase from facts (pure): image, files, data folders and the containers'
 * keep / start / create / recreate. Throws HostError for what it will not do (a port another
 * process holds, an image it may not pull, a container it did not make).
 */
export function planRegistry(facts: RegistryFacts, inputs: Inputs): RegistryPlan {
  const warnings: string[] = []
  const base = {facts, steps: [], writeHtpasswd: false, installCert: false, makeDirs: [], warnings}
  if (!facts.wanted) {
    return {
      ...base,
      found: `not started here (registry ${inputs.registry.text} is ${inputs.startRegistry === 'false' ? 'managed elsewhere: start-registry is false' : 'not this host'})`
    }
  }
  if (!facts.dockerUp) {
    return {
      ...base,
      found: 'Docker is not running yet',
      steps: [
        {description: `run the local registry ${inputs.registry.text} (${inputs.registryImage})`}
      ]
    }
  }
  if (registryFragments(inputs, facts.me).some(f => f.source === 'insecure-registry')) {
    warnings.push(
      `${inputs.registry.text} is served over plain HTTP: it is in this host's insecure-registries, and every other machine that pulls from it needs the same (or give registry-tls-cert and registry-tls-key).`
    )
  }
  const steps: {description: string}[] = []
  let image: RegistryPlan['image']
  if (facts.imageId === undefined) {
    if (inputs.registryImageArchive) image = 'load'
    else if (inputs.offlineDebs !== undefined) {
      throw new HostError(
        `registry-image ${inputs.registryImage} is not on this host, and offline-debs means nothing is pulled: give registry-image-archive (a docker save tar).`
      )
    } else image = 'pull'
    steps.push({
      description:
        image === 'load'
          ? `load ${inputs.registryImage} from ${inputs.registryImageArchive}`
          : `pull ${inputs.registryImage}`
    })
  }
  const writeHtpasswd = !facts.htpasswdOk
  if (writeHtpasswd)
    steps.push({
      description: `write ${AUTH_FILE} (bcrypt) for ${inputs.registryHtpasswd.map(e => e.user).join(', ')}`
    })
  const installCert = !facts.certOk
  if (installCert)
    steps.push({
      description: `install the TLS certificate for the registry and for this host's daemon (${daemonCaPath(inputs)})`
    })
  const makeDirs = Object.entries(facts.dataDirs)
    .filter(([, ok]) => !ok)
    .map(([d]) => d)
  if (makeDirs.length > 0) steps.push({description: `create ${makeDirs.join(', ')}`})
  // New files or a new image change the spec whatever it was: the container is made again.
  const renew = image !== undefined || writeHtpasswd || installCert
  const current = containerAction(
    registrySpec(inputs, facts.imageId ?? '', facts.fileHashes),
    facts.registry
  )
  const registry: ContainerAction = renew && current !== 'create' ? 'recreate' : current
  const mirrorS = mirrorSpec(inputs, facts.imageId ?? '')
  let mirror: ContainerAction | undefined
  if (mirrorS) {
    const m = containerAction(mirrorS, facts.mirror)
    mirror = image !== undefined && m !== 'create' ? 'recreate' : m
  }
  for (const [what, action, port] of [
    ['registry', registry, registryPort(inputs)],
    ['pull-through mirror', mirror, inputs.registryMirrorPort]
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
  const found = facts.registry
    ? `registry container ${facts.registry.running ? 'running' : 'stopped'}${registry === 'keep' ? ', as configured' : ', configuration differs'}`
    : 'no registry container'
  return {
    found,
    facts,
    steps,
    image,
    writeHtpasswd,
    installCert,
    makeDirs,
    registry,
    mirror,
    warnings
  }
}
