import {promises as fs} from 'node:fs'
import * as http from 'node:http'
import * as https from 'node:https'
import * as net from 'node:net'
import * as os from 'node:os'
import * as core from '@actions/core'
import {HostError, tailLines} from '../errors.js'
import type {Phase, RunContext} from '../pipeline.js'
import {readFileMaybe, writeFileAtomic} from '../system/files.js'
import {probeDaemon} from '../system/service.js'
import {htpasswdMatches, renderHtpasswd} from './htpasswd.js'
import {
  daemonCaPath,
  planRegistry,
  type FileHashes,
  type RegistryFacts,
  type RegistryPlan
} from './registry-plan.js'
import {
  AUTH_FILE,
  TLS_CERT,
  TLS_KEY,
  containerAction,
  mirrorSpec,
  registryBind,
  registryPort,
  registrySpec,
  runArgv,
  sha256,
  wantsLocalRegistry,
  type ContainerSpec,
  type ContainerState,
  type HostIdentity
} from './spec.js'

/** State key: the containers this run created or started, for `cleanup: registry`. */
export const STATE_STARTED = 'registry-containers'

/** This host's names and addresses (for start-registry: auto). */
export function hostIdentity(): HostIdentity {
  const names = [os.hostname()]
  const addresses = Object.values(os.networkInterfaces())
    .flat()
    .filter((a): a is os.NetworkInterfaceInfo => a !== undefined)
    .map(a => a.address)
  return {names, addresses}
}

async function inspect(ctx: RunContext, name: string): Promise<ContainerState | undefined> {
  const r = await ctx.runner.run(
    ['docker', 'inspect', '--type', 'container', '--format', '{{json .}}', name],
    {root: true, allowFailure: true}
  )
  if (r.exitCode !== 0) return undefined
  const c = JSON.parse(r.stdout) as {
    Id: string
    State: {Running: boolean}
    Config: {Labels: Record<string, string> | null}
    HostConfig: {PortBindings: Record<string, {HostPort: string}[] | null> | null}
  }
  const port = c.HostConfig.PortBindings?.['5000/tcp']?.[0]?.HostPort
  return {
    id: c.Id,
    running: c.State.Running,
    labels: c.Config.Labels ?? {},
    hostPort: port ? Number(port) : undefined
  }
}

async function imageId(ctx: RunContext, image: string): Promise<string | undefined> {
  const r = await ctx.runner.run(['docker', 'image', 'inspect', '--format', '{{.Id}}', image], {
    root: true,
    allowFailure: true
  })
  return r.exitCode === 0 ? r.stdout.trim() : undefined
}

/** Undefined when `bind:port` can be listened on; else what holds it (as `ss` names it). */
async function portHolder(
  ctx: RunContext,
  bind: string,
  port: number
): Promise<string | undefined> {
  const free = await new Promise<boolean>(resolve => {
    const server = net.createServer()
    server.once('error', () => resolve(false))
    server.listen({host: bind, port, exclusive: true}, () => server.close(() => resolve(true)))
  })
  if (free) return undefined
  const ss = await ctx.runner.run(['ss', '-ltnpH', `sport = :${port}`], {
    root: true,
    allowFailure: true
  })
  const users = /users:\(\((.*)\)\)/.exec(ss.stdout)?.[1]
  return users ? `process ${users}` : 'another process'
}

async function fileHash(path: string | undefined): Promise<string | undefined> {
  if (path === undefined) return undefined
  return sha256(await fs.readFile(path))
}

async function installedHash(ctx: RunContext, path: string): Promise<string | undefined> {
  const text = await readFileMaybe(ctx.runner, path)
  return text === undefined ? undefined : sha256(Buffer.from(text))
}

async function detect(ctx: RunContext): Promise<RegistryFacts> {
  const {inputs} = ctx
  const me = hostIdentity()
  const wanted = wantsLocalRegistry(inputs, me)
  ctx.outputs.registry = inputs.registry.text
  ctx.outputs['registry-started'] = 'false'
  const none: RegistryFacts = {
    me,
    wanted,
    dockerUp: false,
    htpasswdOk: true,
    certOk: true,
    fileHashes: {},
    dataDirs: {},
    portHolders: {}
  }
  if (!wanted) return none
  const dockerUp = (await probeDaemon(ctx.runner)) !== undefined
  const auth = inputs.registryHtpasswd.length > 0
  const [id, registry, mirror, htpasswd, certOk] = await Promise.all([
    dockerUp ? imageId(ctx, inputs.registryImage) : Promise.resolve(undefined),
    dockerUp ? inspect(ctx, 'docker-gpu-setup-registry') : Promise.resolve(undefined),
    dockerUp && inputs.registryMirror !== false
      ? inspect(ctx, 'docker-gpu-setup-mirror')
      : Promise.resolve(undefined),
    auth ? readFileMaybe(ctx.runner, AUTH_FILE) : Promise.resolve(''),
    (async () =>
      !inputs.registryTlsCert ||
      ((await installedHash(ctx, TLS_CERT)) === (await fileHash(inputs.registryTlsCert)) &&
        (await installedHash(ctx, TLS_KEY)) === (await fileHash(inputs.registryTlsKey)) &&
        (await installedHash(ctx, daemonCaPath(ctx.inputs))) ===
          (await fileHash(inputs.registryTlsCert))))()
  ])
  const dirs = [
    inputs.registryData,
    ...(inputs.registryMirror !== false ? [`${inputs.registryData}-mirror`] : [])
  ]
  const dataDirs: Record<string, boolean> = {}
  for (const d of dirs)
    dataDirs[d] = await fs.stat(d).then(
      s => s.isDirectory(),
      () => false
    )
  // A port our own running container publishes is ours; any other holder is named.
  const portHolders: Record<number, string | undefined> = {}
  const ports: [ContainerState | undefined, string, number][] = [
    [registry, registryBind(inputs), registryPort(inputs)]
  ]
  if (inputs.registryMirror !== false) ports.push([mirror, '127.0.0.1', inputs.registryMirrorPort])
  for (const [state, bind, port] of ports) {
    if (!state?.running || state.hostPort !== port)
      portHolders[port] = await portHolder(ctx, bind, port)
  }
  return {
    me,
    wanted,
    dockerUp,
    imageId: id,
    htpasswdOk:
      !auth || (htpasswd !== undefined && htpasswdMatches(htpasswd, inputs.registryHtpasswd)),
    certOk,
    registry,
    mirror,
    fileHashes: await fileHashes(ctx),
    dataDirs,
    portHolders
  }
}

/** Hashes of the registry's htpasswd (as installed) and TLS files (as given). */
async function fileHashes(ctx: RunContext): Promise<FileHashes> {
  const {inputs} = ctx
  const htpasswd =
    inputs.registryHtpasswd.length > 0 ? await readFileMaybe(ctx.runner, AUTH_FILE) : undefined
  return {
    htpasswd: htpasswd === undefined ? undefined : sha256(htpasswd),
    cert: await fileHash(inputs.registryTlsCert),
    key: await fileHash(inputs.registryTlsKey)
  }
}

function plan(facts: RegistryFacts, ctx: RunContext): RegistryPlan {
  const p = planRegistry(facts, ctx.inputs)
  for (const w of p.warnings) ctx.warn(w)
  return p
}

/** GET /v2/ until it answers 200 (401 with auth); each probe bounded, all under a deadline. */
async function waitReady(
  ctx: RunContext,
  spec: ContainerSpec,
  tls: boolean,
  deadlineMs = 30_000
): Promise<void> {
  const host = spec.bind === '0.0.0.0' ? '127.0.0.1' : spec.bind.replace(/^\[|\]$/g, '')
  const end = Date.now() + deadlineMs
  let last = ''
  while (Date.now() < end) {
    const status = await new Promise<number | string>(resolve => {
      const get = tls ? https.get : http.get
      // Readiness only: whether the server answers, not whether this client trusts its certificate.
      const req = get(
        {host, port: spec.hostPort, path: '/v2/', timeout: 2000, rejectUnauthorized: false},
        res => {
          res.resume()
          resolve(res.statusCode ?? 0)
        }
      )
      req.on('timeout', () => req.destroy(new Error('timeout')))
      req.on('error', e => resolve(e.message))
    })
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

/** Creates, starts or recreates one container; a failed recreate brings the previous one back. */
async function ensureContainer(
  ctx: RunContext,
  spec: ContainerSpec,
  tls: boolean,
  state: ContainerState | undefined
): Promise<boolean> {
  const {runner} = ctx
  const action = containerAction(spec, state)
  if (action === 'keep') return false
  core.info(`${spec.name}: ${action}`)
  if (action === 'start') {
    await runner.run(['docker', 'start', spec.name], {root: true})
    await waitReady(ctx, spec, tls)
    return true
  }
  const previous = `${spec.name}-previous`
  if (action === 'recreate') {
    await runner.run(['docker', 'rm', '-f', previous], {root: true, allowFailure: true})
    await runner.run(['docker', 'stop', spec.name], {root: true, allowFailure: true})
    await runner.run(['docker', 'rename', spec.name, previous], {root: true})
  }
  try {
    await runner.run(runArgv(spec), {root: true, context: `Starting ${spec.name}`})
    await waitReady(ctx, spec, tls)
  } catch (e) {
    if (action !== 'recreate') throw e
    // The new spec does not work: put the previous container back as it was.
    await runner.run(['docker', 'rm', '-f', spec.name], {root: true, allowFailure: true})
    await runner.run(['docker', 'rename', previous, spec.name], {root: true})
    await runner.run(['docker', 'start', spec.name], {root: true, allowFailure: true})
    throw e
  }
  if (action === 'recreate')
    await runner.run(['docker', 'rm', '-f', previous], {root: true, allowFailure: true})
  return true
}

async function apply(p: RegistryPlan, ctx: RunContext): Promise<void> {
  const {inputs, runner} = ctx
  if (!p.facts.dockerUp) return
  if (p.image === 'load') {
    await runner.run(['docker', 'load', '--input', inputs.registryImageArchive as string], {
      root: true,
      context: 'Loading the registry image'
    })
  } else if (p.image === 'pull') {
    await runner.run(['docker', 'pull', inputs.registryImage], {
      root: true,
      context: `Pulling ${inputs.registryImage}`
    })
  }
  const id = await imageId(ctx, inputs.registryImage)
  if (id === undefined) {
    throw new HostError(
      `registry-image ${inputs.registryImage} is still not on this host${p.image === 'load' ? ` after loading ${inputs.registryImageArchive}: does the archive hold that tag?` : ''}`
    )
  }
  for (const dir of p.makeDirs) await runner.run(['install', '-d', '-m', '0755', dir], {root: true})
  if (p.writeHtpasswd) {
    await writeFileAtomic(
      runner,
      AUTH_FILE,
      renderHtpasswd(inputs.registryHtpasswd),
      0o644,
      ctx.host.tempDir
    )
  }
  if (p.installCert) {
    const cert = await fs.readFile(inputs.registryTlsCert as string)
    await writeFileAtomic(runner, TLS_CERT, cert, 0o644, ctx.host.tempDir)
    await writeFileAtomic(
      runner,
      TLS_KEY,
      await fs.readFile(inputs.registryTlsKey as string),
      0o600,
      ctx.host.tempDir
    )
    await writeFileAtomic(runner, daemonCaPath(ctx.inputs), cert, 0o644, ctx.host.tempDir)
  }
  const hashes = await fileHashes(ctx)
  const s = {registry: registrySpec(inputs, id, hashes), mirror: mirrorSpec(inputs, id)}
  const started: string[] = []
  if (
    await ensureContainer(
      ctx,
      s.registry,
      inputs.registryTlsCert !== undefined,
      await inspect(ctx, s.registry.name)
    )
  ) {
    started.push(s.registry.name)
  }
  if (
    s.mirror &&
    (await ensureContainer(ctx, s.mirror, false, await inspect(ctx, s.mirror.name)))
  ) {
    started.push(s.mirror.name)
  }
  if (started.length > 0) {
    ctx.outputs['registry-started'] = 'true'
    ctx.saveState(STATE_STARTED, JSON.stringify(started))
  }
}

function verify(_p: RegistryPlan, ctx: RunContext): Promise<string> {
  const {inputs} = ctx
  const auth =
    inputs.registryHtpasswd.length > 0
      ? `, basic auth for ${inputs.registryHtpasswd.map(e => e.user).join(', ')}`
      : ''
  return Promise.resolve(
    `${inputs.registryTlsCert ? 'https' : 'http'}://${inputs.registry.text} (${inputs.registryImage}, data in ${inputs.registryData}${auth})`
  )
}

/**
 * Registry phase: the CNCF distribution registry as a container that survives restarts (restart
 * always, data on the host), reused when its spec is unchanged, with optional auth, TLS and a
 * pull-through mirror.
 */
export const registryPhase: Phase<RegistryFacts, RegistryPlan> = {
  name: 'Local registry',
  detect,
  plan,
  apply,
  verify
}
