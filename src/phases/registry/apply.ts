/** The registry phase's effects: image, data folders, htpasswd and TLS files, the registry, mirror and cache containers (recreated with rollback); readiness and checks. */
import {promises as fs} from 'node:fs'
import * as http from 'node:http'
import * as https from 'node:https'
import * as core from '@actions/core'
import {HostError, tailLines} from '../../errors.js'
import {setMode, writeFileAtomic} from '../../system/files.js'
import type {PhaseContext} from '../pipeline.js'
import {fileHashes, imageId, inspectContainer} from './detect.js'
import {registryFacts} from './facts.js'
import {renderHtpasswd} from './htpasswd.js'
import {recordUse} from './users.js'
import type {RegistrySettings, TlsFiles} from './inputs.js'
import {daemonCaPath, type RegistryPlan} from './plan.js'
import {
  AUTH_FILE,
  TLS_CERT,
  TLS_KEY,
  cacheAddresses,
  cacheSpecs,
  containerAction,
  mirrorSpec,
  REGISTRY_CONTAINER,
  registryPort,
  registrySpec,
  runArgv,
  type ContainerSpec
} from './spec.js'

type Ctx = PhaseContext<RegistrySettings>

/** One GET /v2/ with its own timeout: the status code, or the error's message. */
function probe(host: string, port: number, tls: boolean): Promise<number | string> {
  return new Promise(resolve => {
    const get = tls ? https.get : http.get
    // Readiness only: whether the server answers, not whether this client trusts its certificate.
    const req = get({host, port, path: '/v2/', timeout: 2000, rejectUnauthorized: false}, res => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', e => resolve(e.message))
  })
}

/** GET /v2/ until it answers 200 (401 with auth); each probe bounded, all under a deadline. */
async function waitReady(
  ctx: Ctx,
  spec: ContainerSpec,
  tls: boolean,
  deadlineMs = 30_000
): Promise<void> {
  const host = spec.bind === '0.0.0.0' ? '127.0.0.1' : spec.bind.replace(/^\[|\]$/g, '')
  const end = Date.now() + deadlineMs
  let last = ''
  while (Date.now() < end) {
    const status = await probe(host, spec.hostPort, tls)
    if (status === 200 || status === 401) return
    last = String(status)
    await new Promise(r => setTimeout(r, 250))
  }
  const logs = await ctx.runner.run(['docker', 'logs', '--tail', '20', spec.name], {
    root: true,
    allowFailure: true
  })
  throw new HostError(
    `The ${spec.name} container did not answer GET /v2/ on ${host}:${spec.hostPort} within ${deadlineMs / 1000} s (last: ${last}). Its last log lines:\n${tailLines(`${logs.stdout}${logs.stderr}`, 20)}`
  )
}

/** Starts the stopped registry container this step keeps as it is; ready on plain HTTP or TLS. */
async function startKept(ctx: Ctx): Promise<void> {
  await ctx.runner.run(['docker', 'start', REGISTRY_CONTAINER], {root: true})
  const port = registryPort(ctx.inputs)
  const host = ctx.inputs.registry.host.replace(/^\[|\]$/g, '')
  const end = Date.now() + 30_000
  while (Date.now() < end) {
    for (const tls of [false, true]) {
      const status = await probe(host, port, tls)
      if (status === 200 || status === 401) return
    }
    await new Promise(r => setTimeout(r, 250))
  }
  throw new HostError(
    `The ${REGISTRY_CONTAINER} container was started but did not answer GET /v2/ on ${host}:${port} within 30 s: see docker logs ${REGISTRY_CONTAINER}.`
  )
}

/** Runs a new container from the spec; a failed recreate brings the previous one back. */
async function replaceContainer(
  ctx: Ctx,
  spec: ContainerSpec,
  tls: boolean,
  recreate: boolean
): Promise<void> {
  const {runner} = ctx
  const previous = `${spec.name}-previous`
  if (recreate) {
    await runner.run(['docker', 'rm', '-f', previous], {root: true, allowFailure: true})
    await runner.run(['docker', 'stop', spec.name], {root: true, allowFailure: true})
    await runner.run(['docker', 'rename', spec.name, previous], {root: true})
  }
  try {
    await runner.run(runArgv(spec), {root: true, context: `Starting ${spec.name}`})
    await waitReady(ctx, spec, tls)
  } catch (e) {
    if (!recreate) throw e
    // The new spec does not work: put the previous container back as it was.
    await runner.run(['docker', 'rm', '-f', spec.name], {root: true, allowFailure: true})
    await runner.run(['docker', 'rename', previous, spec.name], {root: true})
    await runner.run(['docker', 'start', spec.name], {root: true, allowFailure: true})
    throw e
  }
  if (recreate) await runner.run(['docker', 'rm', '-f', previous], {root: true, allowFailure: true})
}

/** Creates, starts or recreates one container; true when it did any of those. */
async function ensureContainer(
  ctx: Ctx,
  spec: ContainerSpec & {envText?: string},
  tls: boolean
): Promise<boolean> {
  const action = containerAction(spec, await inspectContainer(ctx.runner, spec.name))
  if (action === 'keep') return false
  core.info(`${spec.name}: ${action}`)
  // The file docker run reads the secrets from: root only, written just before it is read.
  if (spec.envFile && spec.envText !== undefined && action !== 'start') {
    await writeFileAtomic(ctx.runner, spec.envFile.path, spec.envText, 0o600, ctx.host.tempDir)
  }
  if (action === 'start') {
    await ctx.runner.run(['docker', 'start', spec.name], {root: true})
    await waitReady(ctx, spec, tls)
  } else {
    await replaceContainer(ctx, spec, tls, action === 'recreate')
  }
  return true
}

/** Loads or pulls the registry image as planned; returns its id. */
async function ensureImage(ctx: Ctx, p: RegistryPlan): Promise<string> {
  const {inputs, runner} = ctx
  if (p.image === 'load' && inputs.registryImageArchive !== undefined) {
    await runner.run(['docker', 'load', '--input', inputs.registryImageArchive], {
      root: true,
      context: 'Loading the registry image'
    })
  } else if (p.image === 'pull') {
    await runner.run(['docker', 'pull', inputs.registryImage], {
      root: true,
      context: `Pulling ${inputs.registryImage}`
    })
  }
  const id = await imageId(runner, inputs.registryImage)
  if (id === undefined) {
    throw new HostError(
      `registry-image ${inputs.registryImage} is still not on this host${p.image === 'load' ? ` after loading ${inputs.registryImageArchive}: does the archive hold that tag?` : ''}`
    )
  }
  return id
}

/** The certificate and key for the registry, and the certificate as this host's daemon's CA for it. */
async function installCert(ctx: Ctx, tls: TlsFiles): Promise<void> {
  const {runner} = ctx
  const temp = ctx.host.tempDir
  const cert = await fs.readFile(tls.cert)
  await writeFileAtomic(runner, TLS_CERT, cert, 0o644, temp)
  await writeFileAtomic(runner, TLS_KEY, await fs.readFile(tls.key), 0o600, temp)
  await writeFileAtomic(runner, daemonCaPath(ctx.inputs), cert, 0o644, temp)
}

/** The registry and its mirror, when the plan has them; the names of those it started. */
async function ensureRegistry(ctx: Ctx, p: RegistryPlan, id: string): Promise<string[]> {
  const {inputs} = ctx
  if (p.registry === undefined) return []
  const started: string[] = []
  const registry = registrySpec(inputs, id, await fileHashes(ctx))
  if (await ensureContainer(ctx, registry, inputs.registryTls !== undefined)) {
    started.push(registry.name)
  }
  const mirror = mirrorSpec(inputs, id)
  if (mirror && (await ensureContainer(ctx, mirror, false))) started.push(mirror.name)
  return started
}

/**
 * Carries out the registry plan: image, data folders, htpasswd and TLS files, then the registry,
 * mirror and cache containers. Touches /etc/docker-gpu-setup/registry, /etc/docker/certs.d and
 * the data folders; remembers the containers it started for the post step.
 */
export async function applyRegistry(p: RegistryPlan, ctx: Ctx): Promise<void> {
  const {inputs, runner} = ctx
  if (!p.facts.dockerUp) {
    // A dry run never gets here; a step without the engine phase (the registry entry) does.
    if (p.steps.length === 0) return
    throw new HostError(
      'Docker does not answer, so no registry was started: start Docker, or set the host up with org/docker-gpu-setup@v1 before this step.'
    )
  }
  if (p.startKept) {
    await startKept(ctx)
    if (Object.keys(p.caches).length === 0) return
  }
  const id = await ensureImage(ctx, p)
  for (const dir of p.makeDirs) await runner.run(['install', '-d', '-m', '0755', dir], {root: true})
  if (p.writeHtpasswd) {
    const text = renderHtpasswd(inputs.registryHtpasswd)
    // 0600: password hashes are for the registry alone (it runs as root in its container).
    await writeFileAtomic(runner, AUTH_FILE, text, 0o600, ctx.host.tempDir)
  }
  if (p.closeHtpasswd) await setMode(runner, AUTH_FILE, 0o600)
  if (p.installCert && inputs.registryTls) await installCert(ctx, inputs.registryTls)
  const started = await ensureRegistry(ctx, p, id)
  for (const cache of cacheSpecs(inputs, id)) {
    if (await ensureContainer(ctx, cache, false)) started.push(cache.name)
  }
  if (started.length > 0) {
    ctx.outputs.registryStarted = true
    ctx.remember({registryContainers: started})
  }
}

/** What the registry and the caches now serve, for the summary (apply waited for readiness). */
export function verifyRegistry(p: RegistryPlan, ctx: Ctx): Promise<string> {
  const {inputs} = ctx
  // Without Docker (a dry run's bare host) apply did nothing; otherwise it waited for readiness.
  ctx.show(registryFacts(inputs, p.facts.dockerUp ? 'running' : 'docker down'))
  const auth =
    inputs.registryHtpasswd.length > 0
      ? `, basic auth for ${inputs.registryHtpasswd.map(e => e.user).join(', ')}`
      : ''
  const registry = p.facts.wanted
    ? `${inputs.registryTls ? 'https' : 'http'}://${inputs.registry.text} (${inputs.registryImage}, data in ${inputs.registryData}${auth})`
    : 'no local registry'
  const caches = Object.entries(cacheAddresses(inputs)).map(([up, at]) => `${up} → ${at}`)
  return Promise.resolve(
    caches.length > 0 ? `${registry}; pull-through caches: ${caches.join(', ')}` : registry
  )
}

/**
 * Once the containers run (after apply, or found running as configured): sets the caches output,
 * and records that this job uses each of them, so another job's post step leaves them running.
 */
export async function checkRegistry(p: RegistryPlan, ctx: Ctx): Promise<void> {
  if (!p.facts.dockerUp) return
  const {inputs} = ctx
  if (inputs.registryCaches.length > 0) ctx.outputs.caches = cacheAddresses(inputs)
  const id = p.facts.imageId ?? ''
  const used = [
    ...(p.facts.wanted ? [registrySpec(inputs, id, {}), mirrorSpec(inputs, id)] : []),
    ...cacheSpecs(inputs, id)
  ].flatMap(s => (s ? [s.name] : []))
  await recordUse(ctx.runner, used, ctx.host.tempDir)
}
