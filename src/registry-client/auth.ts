/**
 * How a registry is authenticated: its challenge (basic or bearer), bearer tokens from the realm
 * its own challenge names, and the credentials a Docker client config stores for it (inline or
 * through a credential helper).
 */
import * as path from 'node:path'
import * as core from '@actions/core'
import type {CommandRunner} from '../exec/runner.js'
import {readFileMaybe} from '../system/files.js'
import {RegistryError, registrySays, type Reply} from './http.js'
import {isTransientHttp} from './retry.js'

/** A user name and password for a registry. */
export interface Credentials {
  username: string
  password: string
}

/** What a 401's WWW-Authenticate asks for. */
export interface Challenge {
  scheme: 'basic' | 'bearer'
  params: Record<string, string>
}

/** Reads a WWW-Authenticate header; undefined for none, or a scheme other than basic or bearer. */
export function parseChallenge(text: string | undefined): Challenge | undefined {
  const m = /^(Basic|Bearer)\s*(.*)$/i.exec(text ?? '')
  if (!m) return undefined
  const params = Object.fromEntries([...m[2].matchAll(/(\w+)="([^"]*)"/g)].map(p => [p[1], p[2]]))
  return {scheme: m[1].toLowerCase() as 'basic' | 'bearer', params}
}

/** Sends a GET to a token realm (through the pool for its origin) with these headers. */
export type TokenFetch = (url: URL, headers: Record<string, string>) => Promise<Reply>

/**
 * One registry's auth: the challenge its own origin last answered with, and bearer tokens by
 * scope set. The caller hands it only the registry's own challenges: the credentials go to the
 * registry and to the realm the registry named, never to a host that merely answered 401.
 */
export class RegistryAuth {
  private challenge?: Challenge
  /** The registry is reached over TLS: its credentials never go out in clear to a realm. */
  private secure = false
  private readonly tokens = new Map<string, Promise<string>>()

  constructor(
    private readonly host: string,
    private readonly credentials: Partial<Credentials>,
    private readonly fetch: TokenFetch
  ) {}

  /** The challenge of the registry's GET /v2/ (none when it answered 200), over TLS or not. */
  start(header: string | undefined, secure: boolean): void {
    this.challenge = parseChallenge(header)
    this.secure = secure
  }

  /** A new bearer challenge of the registry's own: true when a new token is worth one more try. */
  renew(header: string | undefined): boolean {
    const again = parseChallenge(header)
    if (again?.scheme !== 'bearer') return false
    this.challenge = again
    this.tokens.clear()
    return true
  }

  private basic(): string | undefined {
    const {username, password} = this.credentials
    return username !== undefined && password !== undefined
      ? `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`
      : undefined
  }

  /** The Authorization header for a request needing these scopes, if the registry wants one. */
  async authorization(scopes: string[]): Promise<string | undefined> {
    if (this.challenge?.scheme === 'bearer') return `Bearer ${await this.token(scopes)}`
    return this.basic()
  }

  /** A bearer token for these scopes, from the realm the registry named (one request per scope set). */
  private token(scopes: string[]): Promise<string> {
    const key = [...new Set(scopes)].sort().join(' ')
    const cached = this.tokens.get(key)
    if (cached) return cached
    const p = this.fetchToken(key)
    this.tokens.set(key, p)
    p.catch(() => this.tokens.delete(key))
    return p
  }

  private async fetchToken(key: string): Promise<string> {
    const params = this.challenge?.params ?? {}
    if (!params.realm)
      throw new RegistryError(`${this.host} asks for a token but names no realm`, false)
    const url = new URL(params.realm)
    if (params.service) url.searchParams.set('service', params.service)
    for (const s of key.split(' ').filter(Boolean)) url.searchParams.append('scope', s)
    const auth = this.basic()
    if (auth && this.secure && url.protocol !== 'https:') {
      // A registry reached over TLS that names a plain-HTTP realm would have the password sent in clear.
      throw new RegistryError(
        `${this.host} names a token service over plain HTTP (${url.origin}): its credentials are not sent there`,
        false
      )
    }
    const r = await this.fetch(url, auth ? {Authorization: auth} : {})
    if (r.status !== 200) {
      throw new RegistryError(
        `the token service of ${this.host} answered ${r.status}${registrySays(r.body)}`,
        isTransientHttp(r.status),
        r.status
      )
    }
    const json = JSON.parse(r.body.toString('utf8')) as {token?: string; access_token?: string}
    const token = json.token ?? json.access_token
    if (!token) throw new RegistryError(`the token service of ${this.host} sent no token`, false)
    core.setSecret(token)
    return token
  }
}

/** Where a Docker client config keeps a registry's credentials. */
export type StoredCredentials =
  | {kind: 'inline'; username: string; password: string}
  | {kind: 'helper'; helper: string}
  | {kind: 'none'}

/** The key a Docker client config files a registry under: docker.io by its legacy URL. */
export function credentialKey(registry: string): string {
  return registry === 'docker.io' ? 'https://index.docker.io/v1/' : registry
}

/** The host[:port] of an `auths` key, which may be a URL (`https://host/v1/`). */
function authsHost(key: string): string {
  return key.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').replace(/\/.*$/, '')
}

/**
 * A registry's credentials as `docker push` would find them in a client config (config.json): a
 * credential helper for it (`credHelpers`), else the config's store (`credsStore`), else an
 * `auths` entry (base64 `user:password`, or the two fields). A helper name that is not a plain
 * name is ignored (it becomes part of a program's name).
 */
export function storedCredentials(
  configText: string | undefined,
  registry: string
): StoredCredentials {
  let config: {
    auths?: Record<string, {auth?: string; username?: string; password?: string}>
    credHelpers?: Record<string, string>
    credsStore?: string
  }
  try {
    config = JSON.parse(configText ?? '{}') as typeof config
  } catch {
    return {kind: 'none'}
  }
  const plain = (h: unknown): h is string => typeof h === 'string' && /^[\w.-]+$/.test(h)
  const key = credentialKey(registry)
  const helper = config.credHelpers?.[key] ?? config.credHelpers?.[registry] ?? config.credsStore
  if (plain(helper)) return {kind: 'helper', helper}
  const host = registry === 'docker.io' ? 'index.docker.io' : registry
  const entry = Object.entries(config.auths ?? {}).find(([k]) => authsHost(k) === host)?.[1]
  if (entry?.username && entry.password) {
    return {kind: 'inline', username: entry.username, password: entry.password}
  }
  const decoded = entry?.auth ? Buffer.from(entry.auth, 'base64').toString('utf8') : ''
  const colon = decoded.indexOf(':')
  if (colon > 0) {
    return {kind: 'inline', username: decoded.slice(0, colon), password: decoded.slice(colon + 1)}
  }
  return {kind: 'none'}
}

/** What a credential helper holds for a registry (`docker-credential-<name> get`, via stdin). */
async function fromHelper(
  runner: CommandRunner,
  helper: string,
  registry: string,
  root: boolean
): Promise<Credentials | undefined> {
  const r = await runner.run([`docker-credential-${helper}`, 'get'], {
    input: credentialKey(registry),
    root,
    allowFailure: true,
    timeoutSeconds: 30
  })
  if (r.exitCode !== 0) {
    core.debug(`docker-credential-${helper} has nothing for ${registry}`)
    return undefined
  }
  try {
    const j = JSON.parse(r.stdout) as {Username?: string; Secret?: string}
    if (!j.Username || !j.Secret) return undefined
    core.setSecret(j.Secret)
    return {username: j.Username, password: j.Secret}
  } catch {
    return undefined
  }
}

/** A Docker client config as read: its path, its text (undefined: none), whose it is. */
export interface ClientConfig {
  file: string
  text: string | undefined
  /** Root's (a helper it names runs as root). */
  root: boolean
}

/**
 * The client configs a `docker push` of this job would read, in order: this process's own
 * (`dockerConfigDir`: DOCKER_CONFIG, else ~/.docker, where a `docker login` step put it), then,
 * not root, root's (docker under sudo reads that one).
 */
export async function clientConfigs(
  runner: CommandRunner,
  dockerConfigDir: string | undefined
): Promise<ClientConfig[]> {
  const files = dockerConfigDir ? [path.join(dockerConfigDir, 'config.json')] : []
  if (!runner.isRoot) files.push('/root/.docker/config.json')
  return Promise.all(
    files.map(async file => {
      const root = file.startsWith('/root/') && !runner.isRoot
      const text = await readFileMaybe(runner, file).catch(() => undefined)
      return {file, text, root}
    })
  )
}

/**
 * The credentials the first of `configs` that has any keeps for `registry`, as `docker push`
 * would find them (config.json's auths, or its credential helper); none when there are none.
 */
export async function savedCredentials(
  runner: CommandRunner,
  registry: string,
  configs: readonly ClientConfig[]
): Promise<Credentials | undefined> {
  for (const {file, text, root} of configs) {
    const stored = storedCredentials(text, registry)
    if (stored.kind === 'inline') {
      core.setSecret(stored.password)
      core.debug(`${registry}: the credentials of ${file}`)
      return {username: stored.username, password: stored.password}
    }
    if (stored.kind === 'helper') {
      const login = await fromHelper(runner, stored.helper, registry, root)
      if (login) return login
    }
  }
  return undefined
}
