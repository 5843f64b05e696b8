import {promises as fs} from 'node:fs'
import * as path from 'node:path'
import * as core from '@actions/core'
import {isJsonObject, type Json} from '../../docker/daemon-fragment.js'
import {withClientProxies, type Proxies} from '../../docker/proxy.js'
import {HostError, errorMessage, tailLines} from '../../errors.js'
import {writeOwnedFile} from '../../system/files.js'
import type {PhaseContext} from '../pipeline.js'
import type {PushTarget} from './image-list.js'
import type {Login, PushSettings} from './inputs.js'
import {configDiffIds, portableLayer} from './manifest.js'
import type {LocalImage, PushPlan} from './plan.js'
import {backoffSeconds, isTransient, parsePushOutput, type PushResult} from './push-result.js'
import {RegistryError} from './registry-http.js'
import {closeRegistries, registryClient, remoteImage} from './registries.js'
import {openEngineApi, type EngineApi} from '../../system/engine-api.js'
import {
  cliExporter,
  engineExporter,
  ReadAhead,
  RegistryMemory,
  uploadImage,
  type ImageExporter,
  type KnownLayer,
  type Sent,
  type UploadJob
} from './uploader.js'

type Ctx = PhaseContext<PushSettings>

/**
 * Logs in with the password on stdin into a per-job DOCKER_CONFIG under RUNNER_TEMP, exported to
 * the job's later steps and remembered for the post step, which removes it.
 */
async function login(ctx: Ctx, credentials: Login): Promise<string> {
  const {inputs, runner, host} = ctx
  const dir = path.join(host.tempDir, 'docker-gpu-setup-docker-config')
  await fs.mkdir(dir, {recursive: true, mode: 0o700})
  ctx.remember({dockerConfig: dir})
  await runner.run(
    [
      'docker',
      'login',
      '--username',
      credentials.username,
      '--password-stdin',
      inputs.registry.text
    ],
    {
      root: true,
      env: {DOCKER_CONFIG: dir},
      input: credentials.password,
      context: `Logging in to ${inputs.registry.text}`
    }
  )
  // sudo wrote it as root: give it back to the runner's user, whose later steps read it.
  if (!runner.isRoot) {
    await runner.run(['chown', '-R', `${process.getuid?.()}:${process.getgid?.()}`, dir], {
      root: true
    })
  }
  if (inputs.proxies) await addProxies(path.join(dir, 'config.json'), inputs.proxies)
  core.exportVariable('DOCKER_CONFIG', dir)
  return dir
}

/** The job's containers get the proxies from the config the login made (its auths kept). */
async function addProxies(file: string, proxies: Proxies): Promise<void> {
  const parsed = JSON.parse(await fs.readFile(file, 'utf8')) as Json
  const {config} = withClientProxies(isJsonObject(parsed) ? parsed : {}, proxies)
  await writeOwnedFile(file, `${JSON.stringify(config, null, '\t')}\n`)
}

const seconds = (n: number): Promise<void> => new Promise(res => setTimeout(res, n * 1000))

/** Tags the local image with the target's name, as `docker push` needs it and did before. */
type Tagger = (t: PushTarget) => Promise<void>

function tagger(ctx: Ctx, api: EngineApi | undefined): Tagger {
  return async t => {
    if (!api) {
      await ctx.runner.run(['docker', 'tag', t.source, t.target], {root: true})
      return
    }
    const colon = t.target.lastIndexOf(':')
    const repo = encodeURIComponent(t.target.slice(0, colon))
    const tag = encodeURIComponent(t.target.slice(colon + 1))
    await api.post(`/images/${t.source}/tag?repo=${repo}&tag=${tag}`)
  }
}

/** Images up to this size are exported ahead of their turn (the daemon holds a copy meanwhile). */
const READ_AHEAD_BYTES = 1 << 30

function client(ctx: Ctx, p: PushPlan, registry: string) {
  return registryClient(ctx.inputs, registry, p.facts.registryConfig, ctx.runner)
}

/**
 * Proves a push landed: the registry must hold, for the tag, the digest the push reported. Reads
 * the image's size there (config and layers).
 */
async function confirm(ctx: Ctx, p: PushPlan, t: PushTarget, digest: string): Promise<number> {
  const c = await client(ctx, p, t.registry)
  const held = await remoteImage(c, t.repository, t.tag)
  if (held?.digest !== digest) {
    throw new HostError(
      `the push reported ${digest} but the registry holds ${held?.digest ?? 'nothing'} for ${t.tag}`
    )
  }
  return held.bytes
}

function failed(t: PushTarget, error: string, attempts: number): PushResult {
  return {
    source: t.source,
    target: t.target,
    digest: '',
    size: 0,
    status: 'failed',
    error,
    attempts
  }
}

/** Tags and pushes one target with `docker push`, retrying transient failures; then checks the digest. */
async function dockerPushOne(
  ctx: Ctx,
  p: PushPlan,
  t: PushTarget,
  config: string | undefined
): Promise<PushResult> {
  const {runner, inputs} = ctx
  const env = config ? {DOCKER_CONFIG: config} : undefined
  const tagged = await runner.run(['docker', 'tag', t.source, t.target], {
    root: true,
    allowFailure: true
  })
  if (tagged.exitCode !== 0) return failed(t, tailLines(tagged.stderr || tagged.stdout, 3), 1)
  for (let attempt = 1; ; attempt++) {
    const r = await runner.run(['docker', 'push', t.target], {root: true, env, allowFailure: true})
    const out = `${r.stdout}\n${r.stderr}`
    if (r.exitCode === 0) {
      const pushed = parsePushOutput(out)
      if (!pushed) return failed(t, 'docker push printed no digest', attempt)
      try {
        const size = await confirm(ctx, p, t, pushed.digest)
        return {
          ...failed(t, '', attempt),
          digest: pushed.digest,
          size,
          status: 'pushed',
          error: undefined
        }
      } catch (e) {
        return failed(t, errorMessage(e), attempt)
      }
    }
    const why = tailLines(r.stderr || r.stdout, 3)
    if (attempt > inputs.pushRetries || !isTransient(out)) return failed(t, why, attempt)
    await retryAfter(ctx, [t], why, attempt)
  }
}

/** Says a failed attempt will be retried, and waits the backoff. */
async function retryAfter(
  ctx: Ctx,
  targets: PushTarget[],
  why: string,
  attempt: number
): Promise<void> {
  const wait = backoffSeconds(attempt)
  for (const t of targets) {
    core.info(
      `${t.target}: push failed (${why.split('\n').pop()}); retry ${attempt} of ${ctx.inputs.pushRetries} in ${wait} s`
    )
  }
  await seconds(wait)
}

/** One image for one registry: the targets it goes to there. */
interface Group {
  image: LocalImage
  registry: string
  targets: PushTarget[]
}

function groups(p: PushPlan): Group[] {
  const byKey = new Map<string, Group>()
  for (const t of p.todo) {
    const image = p.facts.locals.get(t.source) as LocalImage
    const key = `${image.id} ${t.registry}`
    const g = byKey.get(key) ?? {image, registry: t.registry, targets: []}
    g.targets.push(t)
    byKey.set(key, g)
  }
  return [...byKey.values()]
}

/** Diff_ids of image configs the registry holds, read once per run. */
type ConfigReader = (registry: string, repository: string, config: string) => Promise<string[]>

/**
 * Layers the registry may hold for the images the targets' tags held before (earlier builds,
 * other images sharing a base), as their configs claim: diff_id → blob, and a repository holding
 * it. Whoever pushed those tags wrote the claims: the uploader checks each before linking it.
 */
async function knownLayers(
  p: PushPlan,
  g: Group,
  configs: ConfigReader
): Promise<Map<string, KnownLayer>> {
  const known = new Map<string, KnownLayer>()
  for (const t of p.facts.targets.filter(x => x.registry === g.registry)) {
    const held = p.facts.remote.get(t.target)
    if (!held?.config || held.layers.length === 0) continue
    try {
      const ids = await configs(t.registry, t.repository, held.config)
      if (ids.length !== held.layers.length) continue
      ids.forEach((id, i) => {
        // A layer an older engine could not pull is sent again rather than linked.
        const blob = portableLayer(held.layers[i])
        if (blob) known.set(id, {blob, repository: t.repository})
      })
    } catch (e) {
      core.debug(`Could not read the config ${t.target} holds: ${errorMessage(e)}`)
    }
  }
  return known
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`
}

/** Pushes one image to its targets in one registry through the API, retrying transient failures. */
async function apiPushOne(
  ctx: Ctx,
  p: PushPlan,
  g: Group,
  memory: (registry: string) => Promise<RegistryMemory>,
  configs: ConfigReader,
  exporter: ImageExporter,
  tag: Tagger
): Promise<PushResult[]> {
  let ready: {mem: RegistryMemory; job: UploadJob} | undefined
  for (let attempt = 1; ; attempt++) {
    const sent: Sent = {layers: 0, gzipped: 0, bytes: 0}
    try {
      // In the try: a target that cannot be tagged, or a registry that cannot be reached, fails
      // this image alone (the latter is retried), never the others.
      if (!ready) {
        // The target's name on the local image too, as docker push gives it (later steps may use it).
        for (const t of g.targets) await tag(t)
        const mem = await memory(g.registry)
        const job: UploadJob = {
          id: g.image.id,
          layers: g.image.layers,
          tags: g.targets.map(t => ({repository: t.repository, tag: t.tag})),
          known: await knownLayers(p, g, configs)
        }
        ready = {mem, job}
      }
      const {mem, job} = ready
      const r = await uploadImage(mem, job, exporter, sent)
      const sizes = await Promise.all(g.targets.map(async t => confirm(ctx, p, t, r.digest)))
      const reused = new Set(job.layers).size - sent.layers
      core.info(
        `${g.targets[0].source}: ${sent.layers} layer(s) sent (${sent.gzipped} as gzip, ${mb(sent.bytes)}), ${Math.max(0, reused)} already in ${g.registry}`
      )
      return g.targets.map((t, i) => ({
        source: t.source,
        target: t.target,
        digest: r.digest,
        size: sizes[i],
        status: 'pushed',
        attempts: attempt
      }))
    } catch (e) {
      const why = errorMessage(e)
      const transient = e instanceof RegistryError && e.transient
      if (attempt > ctx.inputs.pushRetries || !transient) {
        return g.targets.map(t => failed(t, why, attempt))
      }
      await retryAfter(ctx, g.targets, why, attempt)
    }
  }
}

/**
 * Runs `work` over `items`, push-concurrency at a time; one failure does not stop the others.
 * `next` hears of the item that comes after each one taken.
 */
async function pool<T>(
  ctx: Ctx,
  items: T[],
  work: (item: T) => Promise<PushResult[]>,
  next: (item: T) => void = () => undefined
): Promise<PushResult[]> {
  const results: PushResult[] = []
  const queue = [...items]
  await Promise.all(
    Array.from({length: Math.min(ctx.inputs.pushConcurrency, queue.length)}, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
        if (queue.length > 0) next(queue[0])
        for (const r of await work(item)) {
          core.info(
            `${r.target}: ${r.status}${r.digest ? ` ${r.digest}` : ''}${r.error ? ` (${r.error.split('\n').pop()})` : ''}`
          )
          results.push(r)
        }
      }
    })
  )
  return results
}

/** The plan's pushes, by the way it chose; one registry memory per registry for the API. */
async function pushAll(ctx: Ctx, p: PushPlan, config: string | undefined): Promise<PushResult[]> {
  if (p.way === 'docker-push') {
    return pool(ctx, p.todo, async t => [await dockerPushOne(ctx, p, t, config)])
  }
  const memories = new Map<string, Promise<RegistryMemory>>()
  const memory = (registry: string): Promise<RegistryMemory> => {
    let m = memories.get(registry)
    if (!m) {
      m = client(ctx, p, registry).then(c => new RegistryMemory(c))
      memories.set(registry, m)
    }
    return m
  }
  const read = new Map<string, Promise<string[]>>()
  const configs: ConfigReader = (registry, repository, config) => {
    let ids = read.get(config)
    if (!ids) {
      ids = memory(registry)
        .then(async m => m.client.blob(repository, config))
        .then(b => configDiffIds(b.toString('utf8')))
      read.set(config, ids)
    }
    return ids
  }
  // The daemon's socket when this process may open it; else docker save, through sudo if need be.
  const api = await openEngineApi(ctx.host.dockerSocket)
  const ahead = new ReadAhead(api ? engineExporter(api) : cliExporter(ctx.runner))
  // An image some tag already holds needs no export; a large one would hold the daemon's disk.
  const held = new Set([...p.facts.remote.values()].map(r => r?.config))
  const readAhead = (g: Group): void => {
    if (g.image.size <= READ_AHEAD_BYTES && !held.has(g.image.id)) ahead.start(g.image.id)
  }
  try {
    return await pool(
      ctx,
      groups(p),
      async g => apiPushOne(ctx, p, g, memory, configs, ahead.exporter, tagger(ctx, api)),
      readAhead
    )
  } finally {
    await ahead.stop()
  }
}

/**
 * Carries out the push plan: the login, then the pushes with retries and digest checks. Sets the
 * images output (in the order of `images`); fails naming what did not land, after all were tried.
 */
export async function applyPush(p: PushPlan, ctx: Ctx): Promise<void> {
  const config = p.login && ctx.inputs.login ? await login(ctx, ctx.inputs.login) : undefined
  let results: PushResult[]
  try {
    results = await pushAll(ctx, p, config)
  } finally {
    await closeRegistries(ctx.inputs)
  }
  const order = new Map(ctx.inputs.images.map((t, i) => [t.target, i]))
  const all = [...p.unchanged, ...results].sort(
    (a, b) => (order.get(a.target) ?? 0) - (order.get(b.target) ?? 0)
  )
  ctx.outputs.images = all
  const failures = all.filter(r => r.status === 'failed')
  for (const f of failures) {
    core.error(`${f.target} was not pushed: ${f.error ?? 'unknown error'}`, {
      title: `push ${f.target}`
    })
  }
  if (failures.length > 0) {
    const landed = all.filter(r => r.status !== 'failed').map(r => r.target)
    throw new HostError(
      `${failures.length} of ${all.length} image(s) did not land: ${failures.map(f => f.target).join(', ')}.` +
        (landed.length > 0 ? ` In the registry: ${landed.join(', ')}.` : '')
    )
  }
}

/** How many targets were pushed and how many were already there. */
export function verifyPush(p: PushPlan, ctx: Ctx): Promise<string> {
  const pushed = (ctx.outputs.images ?? []).filter(r => r.status === 'pushed').length
  return Promise.resolve(`${pushed} pushed, ${p.unchanged.length} unchanged`)
}
