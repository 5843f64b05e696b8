/**
 * Carries out the push plan: the login into a per-job DOCKER_CONFIG, the plan's pushes by the
 * strategy its way names, push-concurrency at a time, and the images output in input order.
 */
import {promises as fs} from 'node:fs'
import * as path from 'node:path'
import * as core from '@actions/core'
import {isJsonObject, type Json} from '../../docker/daemon-fragment.js'
import {withClientProxies, type Proxies} from '../../docker/proxy.js'
import {HostError} from '../../errors.js'
import {writeOwnedFile} from '../../system/files.js'
import {dockerCliPush} from './docker-cli-push.js'
import type {Login} from './inputs.js'
import type {PushPlan, PushWay} from './plan.js'
import type {PushResult} from './push-result.js'
import {registryApiPush} from './registry-api-push.js'
import type {PushContext, PushStrategy, WorkerPool} from './strategy.js'

/**
 * Logs in with the password on stdin into a per-job DOCKER_CONFIG under RUNNER_TEMP, exported to
 * the job's later steps and remembered for the post step, which removes it.
 */
async function login(ctx: PushContext, credentials: Login): Promise<string> {
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

/** The run's pool of push-concurrency workers; it logs each result as it comes. */
export function workerPool(concurrency: number): WorkerPool {
  return async (items, work, next = () => undefined) => {
    const results: PushResult[] = []
    const queue = [...items]
    const workers = Math.min(concurrency, queue.length)
    await Promise.all(
      Array.from({length: workers}, async () => {
        for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
          // One ahead per worker: with only the very next begun, the worker taking it at the
          // same moment would wait for the daemon to write that image out before its first byte.
          for (const ahead of queue.slice(0, workers)) next(ahead)
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
}

/** The push strategies, chosen by the plan's way: the one place a way becomes code. */
const STRATEGIES: Record<PushWay, PushStrategy> = {
  'docker-push': dockerCliPush,
  'registry-api': registryApiPush
}

/**
 * Carries out the push plan: the login, then the pushes with retries and digest checks. Sets the
 * images output (in the order of `images`); fails naming what did not land, after all were tried.
 */
export async function applyPush(p: PushPlan, ctx: PushContext): Promise<void> {
  if (!p.facts.dockerUp && p.facts.targets.length > 0) {
    // A dry run never gets here; a step without the engine phase (the push entry) does.
    throw new HostError(
      'Docker does not answer, so no image was pushed: start Docker, or set the host up with org/docker-gpu-setup@v1 before this step.'
    )
  }
  const config = p.login && ctx.inputs.login ? await login(ctx, ctx.inputs.login) : undefined
  let results: PushResult[]
  try {
    results = await STRATEGIES[p.way](ctx, p, workerPool(ctx.inputs.pushConcurrency), config)
  } finally {
    await p.facts.registries.close()
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
export function verifyPush(p: PushPlan, ctx: PushContext): Promise<string> {
  const pushed = (ctx.outputs.images ?? []).filter(r => r.status === 'pushed').length
  return Promise.resolve(`${pushed} pushed, ${p.unchanged.length} unchanged`)
}
