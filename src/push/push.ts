import {promises as fs} from 'node:fs'
import * as path from 'node:path'
import * as core from '@actions/core'
import {isLoopbackHost, parseRegistryAddress} from '../docker/reference.js'
import {HostError, tailLines} from '../errors.js'
import type {Inputs} from '../inputs.js'
import type {Phase, PhasePlan, RunContext} from '../pipeline.js'
import {registryFragments} from '../registry/spec.js'
import {hostIdentity} from '../registry/registry.js'
import type {PushTarget} from './image-list.js'
import {
  backoffSeconds,
  digestsOutput,
  imagesOutput,
  isTransient,
  parsePushOutput,
  repoDigest,
  type PushResult
} from './push-model.js'
import {manifestDigest, type RegistryEndpoint} from './registry-api.js'

/** State key: the per-job DOCKER_CONFIG the post step removes (cleanup: all). */
export const STATE_DOCKER_CONFIG = 'docker-config'

interface LocalImage {
  id: string
  repoDigests: string[]
  size: number
}

interface PushFacts {
  /** Docker answered (a dry run on a host without it yet cannot look at images). */
  dockerUp: boolean
  targets: PushTarget[]
  locals: Map<string, LocalImage>
  /** Digest the registry holds for each target that may be unchanged. */
  remote: Map<string, string | undefined>
}

interface PushPlan extends PhasePlan {
  facts: PushFacts
  login: boolean
  todo: PushTarget[]
  unchanged: PushResult[]
}

/** How to reach a target's registry API: scheme, CA, and credentials (for `registry` only). */
async function endpointFor(inputs: Inputs, registry: string): Promise<RegistryEndpoint> {
  const ours = registry === inputs.registry.text
  const tls = ours && inputs.registryTlsCert !== undefined
  const insecure =
    ours && registryFragments(inputs, hostIdentity()).some(f => f.source === 'insecure-registry')
  const plain = !tls && (isLoopbackHost(parseRegistryAddress(registry).host) || insecure)
  return {
    host: registry,
    scheme: plain ? 'http' : 'https',
    ca: tls ? await fs.readFile(inputs.registryTlsCert as string) : undefined,
    username: ours ? inputs.username : undefined,
    password: ours ? inputs.password : undefined
  }
}

async function inspectLocal(ctx: RunContext, source: string): Promise<LocalImage | undefined> {
  const r = await ctx.runner.run(
    ['docker', 'image', 'inspect', '--format', '{{.Id}}\t{{json .RepoDigests}}\t{{.Size}}', source],
    {root: true, allowFailure: true}
  )
  if (r.exitCode !== 0) return undefined
  const [id, digests, size] = r.stdout.trim().split('\t')
  return {id, repoDigests: (JSON.parse(digests) as string[] | null) ?? [], size: Number(size)}
}

async function detect(ctx: RunContext): Promise<PushFacts> {
  const {inputs} = ctx
  const targets = inputs.images
  const locals = new Map<string, LocalImage>()
  const remote = new Map<string, string | undefined>()
  const dockerUp =
    targets.length > 0 &&
    (
      await ctx.runner.run(['docker', 'info', '--format', '{{.ID}}'], {
        root: true,
        allowFailure: true,
        timeoutSeconds: 10
      })
    ).exitCode === 0
  if (!dockerUp) return {dockerUp, targets, locals, remote}
  for (const source of new Set(targets.map(t => t.source))) {
    const image = await inspectLocal(ctx, source)
    if (image) locals.set(source, image)
  }
  // Only a target whose local image already carries a digest for it can be unchanged.
  await Promise.all(
    targets.map(async t => {
      const local = locals.get(t.source)
      if (!local || repoDigest(local.repoDigests, t) === undefined) return
      try {
        remote.set(
          t.target,
          await manifestDigest(await endpointFor(inputs, t.registry), t.repository, t.tag)
        )
      } catch (e) {
        core.debug(`Could not read ${t.target} from its registry: ${(e as Error).message}`)
      }
    })
  )
  return {dockerUp, targets, locals, remote}
}

function plan(facts: PushFacts, ctx: RunContext): PushPlan {
  const {inputs} = ctx
  const base = {facts, login: false, todo: [], unchanged: []}
  if (facts.targets.length === 0)
    return {...base, found: 'no images to push (images is empty)', steps: []}
  if (!facts.dockerUp) {
    const steps = facts.targets.map(t => ({description: `push ${t.source} as ${t.target}`}))
    return {...base, found: 'Docker is not running yet', steps}
  }
  const missing = facts.targets.filter(t => !facts.locals.has(t.source))
  const missingSources = [...new Map(missing.map(t => [t.source, t])).values()]
  if (missingSources.length > 0) {
    throw new HostError(
      `images: ${missingSources.map(t => `${t.source} (line ${t.line})`).join(', ')} ${missingSources.length === 1 ? 'is' : 'are'} not on this host; nothing was pushed. Build or pull ${missingSources.length === 1 ? 'it' : 'them'} before this step.`
    )
  }
  const unchanged: PushResult[] = []
  const todo: PushTarget[] = []
  for (const t of facts.targets) {
    const local = facts.locals.get(t.source)
    const held = facts.remote.get(t.target)
    const mine = local ? repoDigest(local.repoDigests, t) : undefined
    if (local && held !== undefined && held === mine) {
      unchanged.push({
        source: t.source,
        target: t.target,
        digest: held,
        size: local.size,
        status: 'unchanged'
      })
    } else todo.push(t)
  }
  const login = inputs.username !== undefined && todo.length > 0
  const steps = [
    ...(login
      ? [
          {
            description: `log in to ${inputs.registry.text} as ${inputs.username} (per-job DOCKER_CONFIG)`
          }
        ]
      : []),
    ...todo.map(t => ({description: `push ${t.source} as ${t.target}`}))
  ]
  ctx.outputs.images = imagesOutput(unchanged)
  ctx.outputs.digests = digestsOutput(unchanged)
  return {
    facts,
    login,
    todo,
    unchanged,
    steps,
    found: `${facts.targets.length} target(s); ${unchanged.length} already in the registry with the same digest`
  }
}

/** Logs in with the password on stdin into a per-job DOCKER_CONFIG; later steps get it too. */
async function login(ctx: RunContext): Promise<string> {
  const {inputs, runner, host} = ctx
  const dir = path.join(host.tempDir, 'docker-gpu-setup-docker-config')
  await fs.mkdir(dir, {recursive: true, mode: 0o700})
  ctx.saveState(STATE_DOCKER_CONFIG, dir)
  await runner.run(
    [
      'docker',
      'login',
      '--username',
      inputs.username as string,
      '--password-stdin',
      inputs.registry.text
    ],
    {
      root: true,
      env: {DOCKER_CONFIG: dir},
      input: inputs.password,
      context: `Logging in to ${inputs.registry.text}`
    }
  )
  // sudo wrote it as root: give it back to the runner's user, whose later steps read it.
  if (!runner.isRoot) {
    await runner.run(['chown', '-R', `${process.getuid?.()}:${process.getgid?.()}`, dir], {
      root: true
    })
  }
  core.exportVariable('DOCKER_CONFIG', dir)
  return dir
}

/** Tags and pushes one target, retrying transient failures with backoff; then checks the digest. */
async function pushOne(
  ctx: RunContext,
  t: PushTarget,
  size: number,
  config: string | undefined
): Promise<PushResult> {
  const {runner, inputs} = ctx
  const env = config ? {DOCKER_CONFIG: config} : undefined
  const result: PushResult = {
    source: t.source,
    target: t.target,
    digest: '',
    size,
    status: 'failed'
  }
  await runner.run(['docker', 'tag', t.source, t.target], {root: true})
  for (let attempt = 1; ; attempt++) {
    result.attempts = attempt
    const r = await runner.run(['docker', 'push', t.target], {root: true, env, allowFailure: true})
    const out = `${r.stdout}\n${r.stderr}`
    if (r.exitCode === 0) {
      const pushed = parsePushOutput(out)
      if (!pushed) {
        result.error = 'docker push printed no digest'
        return result
      }
      const held = await manifestDigest(
        await endpointFor(inputs, t.registry),
        t.repository,
        t.tag
      ).catch((e: Error) => `unreadable (${e.message})`)
      if (held !== pushed.digest) {
        result.error = `the push reported ${pushed.digest} but the registry holds ${held ?? 'nothing'} for ${t.tag}`
        return result
      }
      return {
        ...result,
        digest: pushed.digest,
        size: pushed.size,
        status: 'pushed',
        error: undefined
      }
    }
    const why = tailLines(r.stderr || r.stdout, 3)
    if (attempt > inputs.pushRetries || !isTransient(out)) {
      result.error = why
      return result
    }
    const wait = backoffSeconds(attempt)
    core.info(
      `${t.target}: push failed (${why.split('\n').pop()}); retry ${attempt} of ${inputs.pushRetries} in ${wait} s`
    )
    await new Promise(res => setTimeout(res, wait * 1000))
  }
}

async function apply(p: PushPlan, ctx: RunContext): Promise<void> {
  const config = p.login ? await login(ctx) : undefined
  const results: PushResult[] = []
  const queue = [...p.todo]
  // push-concurrency workers; one failure does not stop the others.
  await Promise.all(
    Array.from({length: Math.min(ctx.inputs.pushConcurrency, queue.length)}, async () => {
      for (let t = queue.shift(); t !== undefined; t = queue.shift()) {
        const r = await pushOne(ctx, t, p.facts.locals.get(t.source)?.size ?? 0, config)
        core.info(
          `${r.target}: ${r.status}${r.digest ? ` ${r.digest}` : ''}${r.error ? ` (${r.error.split('\n').pop()})` : ''}`
        )
        results.push(r)
      }
    })
  )
  const order = new Map(ctx.inputs.images.map((t, i) => [t.target, i]))
  const all = [...p.unchanged, ...results].sort(
    (a, b) => (order.get(a.target) ?? 0) - (order.get(b.target) ?? 0)
  )
  ctx.outputs.images = imagesOutput(all)
  ctx.outputs.digests = digestsOutput(all)
  const failed = all.filter(r => r.status === 'failed')
  for (const f of failed)
    core.error(`${f.target} was not pushed: ${f.error ?? 'unknown error'}`, {
      title: `push ${f.target}`
    })
  if (failed.length > 0) {
    const landed = all.filter(r => r.status !== 'failed').map(r => r.target)
    throw new HostError(
      `${failed.length} of ${all.length} image(s) did not land: ${failed.map(f => f.target).join(', ')}.` +
        (landed.length > 0 ? ` In the registry: ${landed.join(', ')}.` : '')
    )
  }
}

function verify(p: PushPlan, ctx: RunContext): Promise<string> {
  const results = JSON.parse(ctx.outputs.images ?? '[]') as PushResult[]
  const pushed = results.filter(r => r.status === 'pushed').length
  return Promise.resolve(`${pushed} pushed, ${p.unchanged.length} unchanged`)
}

/** Push phase: tags and pushes the job's images with retries, and verifies each digest in the registry. */
export const pushPhase: Phase<PushFacts, PushPlan> = {
  name: 'Push images',
  detect,
  plan,
  apply,
  verify
}
