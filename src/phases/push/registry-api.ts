/** A registry's HTTP API, as far as pushing needs it: the digest it holds for a tag. */
import {promises as fs} from 'node:fs'
import * as http from 'node:http'
import * as https from 'node:https'
import {isLoopbackHost, parseRegistryAddress} from '../../docker/reference.js'
import {HostError} from '../../errors.js'
import type {PushSettings} from './inputs.js'

/** How to reach one registry's HTTP API. */
export interface RegistryEndpoint {
  /** `host[:port]` as in image references. */
  host: string
  scheme: 'http' | 'https'
  /** Extra CA to trust (a self-signed local registry). */
  ca?: Buffer
  username?: string
  password?: string
}

interface Reply {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

function request(
  url: URL,
  method: string,
  headers: Record<string, string>,
  ca?: Buffer
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http
    const req = mod.request(url, {method, headers, timeout: 15_000, ...(ca ? {ca} : {})}, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => {
        if (body.length < 65536) body += d
      })
      res.on('end', () => resolve({status: res.statusCode ?? 0, headers: res.headers, body}))
    })
    req.on('timeout', () => req.destroy(new Error(`timeout talking to ${url.host}`)))
    req.on('error', reject)
    req.end()
  })
}

const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json'
].join(', ')

function basic(ep: RegistryEndpoint): string | undefined {
  return ep.username !== undefined && ep.password !== undefined
    ? `Basic ${Buffer.from(`${ep.username}:${ep.password}`).toString('base64')}`
    : undefined
}

/** A bearer token for `scope`, from the realm a 401 names (Docker Hub, GHCR, Harbor…). */
async function bearer(
  ep: RegistryEndpoint,
  challenge: string,
  scope: string
): Promise<string | undefined> {
  const params = Object.fromEntries(
    [...challenge.matchAll(/(\w+)="([^"]*)"/g)].map(m => [m[1], m[2]])
  )
  if (!params.realm) return undefined
  const url = new URL(params.realm)
  if (params.service) url.searchParams.set('service', params.service)
  url.searchParams.set('scope', scope)
  const auth = basic(ep)
  const r = await request(url, 'GET', auth ? {Authorization: auth} : {}, ep.ca)
  if (r.status !== 200) return undefined
  const json = JSON.parse(r.body) as {token?: string; access_token?: string}
  return json.token ?? json.access_token
}

/**
 * The digest the registry holds for `repository:tag` (Docker-Content-Digest of a manifest HEAD),
 * or undefined when it has none. Basic and bearer auth; credentials stay in this process.
 */
export async function manifestDigest(
  ep: RegistryEndpoint,
  repository: string,
  tag: string
): Promise<string | undefined> {
  const url = new URL(
    `${ep.scheme}://${ep.host}/v2/${repository}/manifests/${encodeURIComponent(tag)}`
  )
  const headers: Record<string, string> = {Accept: MANIFEST_TYPES}
  const auth = basic(ep)
  if (auth) headers.Authorization = auth
  let r = await request(url, 'HEAD', headers, ep.ca)
  const challenge = r.headers['www-authenticate']
  if (r.status === 401 && typeof challenge === 'string' && /^Bearer /i.test(challenge)) {
    const token = await bearer(ep, challenge, `repository:${repository}:pull`)
    if (token) r = await request(url, 'HEAD', {...headers, Authorization: `Bearer ${token}`}, ep.ca)
  }
  if (r.status === 404) return undefined
  if (r.status !== 200) {
    throw new HostError(`HEAD ${url.pathname} on ${ep.host} answered ${r.status}`)
  }
  const digest = r.headers['docker-content-digest']
  return typeof digest === 'string' ? digest : undefined
}

/**
 * How to reach a target's registry API (reads the local registry's CA file): scheme, CA, and
 * credentials, which belong to `registry` only.
 */
export async function endpointFor(
  settings: Pick<PushSettings, 'registry' | 'registryCa' | 'registryInsecure' | 'login'>,
  registry: string
): Promise<RegistryEndpoint> {
  const ours = registry === settings.registry.text
  const ca = ours ? settings.registryCa : undefined
  const insecure = ours && settings.registryInsecure
  const plain =
    ca === undefined && (isLoopbackHost(parseRegistryAddress(registry).host) || insecure)
  return {
    host: registry,
    scheme: plain ? 'http' : 'https',
    ca: ca === undefined ? undefined : await fs.readFile(ca),
    username: ours ? settings.login?.username : undefined,
    password: ours ? settings.login?.password : undefined
  }
}
