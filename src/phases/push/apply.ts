import {promises as fs} from 'node:fs'
import * as path from 'node:path'
import * as core from '@actions/core'
import {isJsonObject, type Json} from '../../docker/daemon-fragment.js'
import {withClientProxies, type Proxies} from '../../docker/proxy.js'
import {HostError, tailLines} from '../../errors.js'
import {writeOwnedFile} from '../../system/files.js'
import type {PhaseContext} from '../pipeline.js'
import type {PushTarget} from './image-list.js'
import type {Login, PushSettings} from './inputs.js'
import type {PushPlan} from './plan.js'
import {backoffSeconds, isTransient, parsePushOutput, type PushResult} from './push-result.js'
import {endpointFor, manifestDigest} from './registry-api.js'

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

/** After a push that printed a digest: the registry must hold that digest for the tag. */
async function confirmDigest(
  ctx: Ctx,
  t: PushTarget,
  result: PushResult,
  output: string
): Promise<PushResult> {
  const pushed = parsePushOutput(output)
  if (!pushed) return {...result, error: 'docker push printed no digest'}
  const held = await manifestDigest(
    await endpointFor(ctx.inputs, t.registry),
    t.repository,
    t.tag
  ).catch((e: Error) => `unreadable (${e.message})`)
  if (held !== pushed.digest) {
    return {
      ...result,
      error: `the push reported ${pushed.digest} but the registry holds ${held ?? 'nothing'} for ${t.tag}`
    }
  }
  return {...result, digest: pushed.digest, size: pushed.size, status: 'pushed', error: undefined}
}

/** Tags and pushes one target, retrying transient failures with backoff; then checks the digest. */
async function pushOne(
  ctx: Ctx,
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
    if (r.exitCode === 0) return confirmDigest(ctx, t, result, out)
    const why = tailLines(r.stderr || r.stdout, 3)
    if (attempt > inputs.pushRetries || !isTransient(out)) return {...result, error: why}
    const wait = backoffSeconds(attempt)
    core.info(
      `${t.target}: push failed (${why.split('\n').pop()}); retry ${attempt} of ${inputs.pushRetries} in ${wait} s`
    )
    await new Promise(res => setTimeout(res, wait * 1000))
  }
}

/** push-concurrency workers over the plan's targets; one failure does not stop the others. */
async function pushAll(ctx: Ctx, p: PushPlan, config: string | undefined): Promise<PushResult[]> {
  const results: PushResult[] = []
  const queue = [...p.todo]
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
  return results
}

/**
 * Carries out the push plan: the login, then tag and push with retries and digest checks. Sets the
 * images output (in the order of `images`); fails naming what did not land, after all were tried.
 */
export async function applyPush(p: PushPlan, ctx: Ctx): Promise<void> {
  const config = p.login && ctx.inputs.login ? await login(ctx, ctx.inputs.login) : undefined
  const results = await pushAll(ctx, p, config)
  const order = new Map(ctx.inputs.images.map((t, i) => [t.target, i]))
  const all = [...p.unchanged, ...results].sort(
    (a, b) => (order.get(a.target) ?? 0) - (order.get(b.target) ?? 0)
  )
  ctx.outputs.images = all
  const failed = all.filter(r => r.status === 'failed')
  for (const f of failed) {
    core.error(`${f.target} was not pushed: ${f.error ?? 'unknown error'}`, {
      title: `push ${f.target}`
    })
  }
  if (failed.length > 0) {
    const landed = all.filter(r => r.status !== 'failed').map(r => r.target)
    throw new HostError(
      `${failed.length} of ${all.length} image(s) did not land: ${failed.map(f => f.target).join(', ')}.` +
        (landed.length > 0 ? ` In the registry: ${landed.join(', ')}.` : '')
    )
  }
}

/** How many targets were pushed and how many were already there. */
export function verifyPush(p: PushPlan, ctx: Ctx): Promise<string> {
  const pushed = (ctx.outputs.images ?? []).filter(r => r.status === 'pushed').length
  return Promise.resolve(`${pushed} pushed, ${p.unchanged.length} unchanged`)
}
