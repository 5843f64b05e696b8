/**
 * The proxy phase's plan (pure): the Docker client configs the job uses get `proxies.default`, so
 * the containers it starts (docker run, docker build, compose) get the proxy variables. Every
 * other key of those files is kept; a file that already says the same is not written.
 */
import {canonical, isJsonObject, type Json, type JsonObject} from '../../docker/daemon-fragment.js'
import {
  noProxyText,
  withClientProxies,
  withoutCredentials,
  type Proxies
} from '../../docker/proxy.js'
import {HostError} from '../../errors.js'
import type {PhasePlan} from '../pipeline.js'
import type {ProxySettings} from './inputs.js'

/** One Docker client config file the job uses, as found. */
export interface ClientConfigFile {
  path: string
  /** Its text; undefined when there is none yet. */
  text?: string
}

/** What detection found: the client configs to give the proxies (none when no proxy is set). */
export interface ProxyFacts {
  files: ClientConfigFile[]
  /** Proxy variables of the runner's own environment, by name (values without credentials). */
  runnerEnvironment: Record<string, string>
}

/** A client config to write, whole. */
export interface ClientConfigWrite {
  path: string
  text: string
}

/** The proxy phase's plan: the files to write. */
export interface ProxyPlan extends PhasePlan {
  writes: ClientConfigWrite[]
}

/** The client config's text as Docker writes it (tab-indented JSON). */
export function serialiseClientConfig(config: JsonObject): string {
  return `${JSON.stringify(config, null, '\t')}\n`
}

function parse(file: ClientConfigFile): JsonObject {
  if (file.text === undefined || file.text.trim() === '') return {}
  let parsed: Json
  try {
    parsed = JSON.parse(file.text) as Json
  } catch (e) {
    throw new HostError(
      `${file.path} is not valid JSON (${(e as Error).message}); it was left as it is: fix it (or move it away) and run again.`
    )
  }
  if (!isJsonObject(parsed)) {
    throw new HostError(`${file.path} is not a JSON object; it was left as it is.`)
  }
  return parsed
}

/** The proxies in one line, without credentials. */
export function describeProxies(p: Proxies): string {
  return [
    p.http !== undefined ? `http-proxy ${withoutCredentials(p.http)}` : undefined,
    p.https !== undefined ? `https-proxy ${withoutCredentials(p.https)}` : undefined,
    `no-proxy ${noProxyText(p)}`
  ]
    .filter(Boolean)
    .join(', ')
}

/** One client config: the write it needs (if any) and the values it replaces, as warnings. */
function planFile(
  file: ClientConfigFile,
  proxies: Proxies
): {write?: ClientConfigWrite; warnings: string[]} {
  const current = parse(file)
  const {config, overwrites} = withClientProxies(current, proxies)
  const warnings = overwrites.map(
    o =>
      `${file.path}: ${o.key} changes from ${withoutCredentials(o.from)} to ${withoutCredentials(o.to)} (http-proxy, https-proxy, no-proxy)`
  )
  const same =
    file.text !== undefined &&
    JSON.stringify(canonical(config)) === JSON.stringify(canonical(current))
  return {
    write: same ? undefined : {path: file.path, text: serialiseClientConfig(config)},
    warnings
  }
}

/** What the runner's environment carries, for the log when no proxy input is set. */
function describeRunnerEnvironment(env: Record<string, string>): string {
  const names = Object.keys(env)
  return names.length === 0
    ? 'no proxy inputs, and no proxy variables in the runner environment'
    : `no proxy inputs; the runner environment's ${names.join(', ')} reach the commands this action runs (under sudo too), nothing is configured`
}

/**
 * Plans the proxy phase (pure): `proxies.default` in each client config the job uses, written
 * only where it differs. Throws HostError for a malformed file, which is never overwritten.
 */
export function planProxies(facts: ProxyFacts, inputs: ProxySettings): ProxyPlan {
  const {proxies} = inputs
  if (!proxies) {
    return {
      found: describeRunnerEnvironment(facts.runnerEnvironment),
      steps: [],
      warnings: [],
      writes: []
    }
  }
  const planned = facts.files.map(f => ({file: f, ...planFile(f, proxies)}))
  const writes = planned.flatMap(p => (p.write ? [p.write] : []))
  const state = planned
    .map(
      p =>
        `${p.file.path} ${p.write ? (p.file.text === undefined ? 'missing' : 'without them') : 'has them'}`
    )
    .join('; ')
  return {
    found: `${describeProxies(proxies)}; apt and every command run under sudo get them; ${state || 'no client config found'}`,
    steps: writes.map(w => ({
      description: `set proxies.default in ${w.path} (containers the job starts get http_proxy, https_proxy, no_proxy)`
    })),
    warnings: planned.flatMap(p => p.warnings),
    writes
  }
}
