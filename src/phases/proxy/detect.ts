/** Reads the Docker client configs the job uses, found directly from the home folder and DOCKER_CONFIG, and the runner's proxy variables. */
import * as os from 'node:os'
import * as path from 'node:path'
import {withoutCredentials} from '../../docker/proxy.js'
import {KEPT_UNDER_SUDO} from '../../exec/runner.js'
import {exists, readFileMaybe} from '../../system/files.js'
import type {PhaseContext} from '../pipeline.js'
import type {ProxySettings} from './inputs.js'
import type {ClientConfigFile, ProxyFacts} from './plan.js'

type Ctx = PhaseContext<ProxySettings>

/** The home folder of the runner's user: this process's own (HOME), or (as root for SUDO_USER) getent's. */
async function runnerHome(ctx: Ctx, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  if (ctx.host.user === os.userInfo().username) return env.HOME || os.homedir()
  const r = await ctx.runner.run(['getent', 'passwd', ctx.host.user], {allowFailure: true})
  const home = r.stdout.trim().split(':')[5]
  return r.exitCode === 0 && home ? home : undefined
}

/**
 * The client configs the job's docker commands read: the runner user's ~/.docker/config.json,
 * and the one DOCKER_CONFIG names when the job set it (a login of an earlier step made it).
 */
async function clientConfigPaths(ctx: Ctx, env: NodeJS.ProcessEnv): Promise<string[]> {
  const paths: string[] = []
  const home = await runnerHome(ctx, env)
  if (home !== undefined) paths.push(path.join(home, '.docker', 'config.json'))
  const own = env.DOCKER_CONFIG
  // A folder someone named but never made is not this action's to create.
  if (own && (await exists(own))) paths.push(path.join(own, 'config.json'))
  return [...new Set(paths)]
}

/** The proxy variables this process was started with, credentials removed. */
function runnerEnvironment(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of KEPT_UNDER_SUDO) {
    const value = env[name]
    if (value) out[name] = withoutCredentials(value)
  }
  return out
}

/**
 * Reads the client configs the job uses (only when a proxy is set), and which proxy variables
 * the runner's environment carries; changes nothing.
 */
export async function detectProxies(
  ctx: Ctx,
  env: NodeJS.ProcessEnv = process.env
): Promise<ProxyFacts> {
  if (!ctx.inputs.proxies) return {files: [], runnerEnvironment: runnerEnvironment(env)}
  const files: ClientConfigFile[] = []
  for (const file of await clientConfigPaths(ctx, env)) {
    files.push({path: file, text: await readFileMaybe(ctx.runner, file)})
  }
  return {files, runnerEnvironment: {}}
}
