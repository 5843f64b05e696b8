/**
 * Opens one registry client per registry the targets name, reaching each as this host's daemon
 * would: its insecure-registries, /etc/docker/certs.d, and the login for `registry` only.
 */
import {promises as dns} from 'node:dns'
import {promises as fs} from 'node:fs'
import {isIP} from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import * as core from '@actions/core'
import {HostError, errorMessage} from '../../errors.js'
import type {CommandRunner} from '../../exec/runner.js'
import {readFileMaybe} from '../../system/files.js'
import type {Login, PushSettings} from './inputs.js'
import {imageBytes, isIndex} from './manifest.js'
import type {RemoteImage} from './plan.js'
import {RegistryClient} from './registry-api.js'
import {
  certFiles,
  credentialKey,
  isSecureRegistry,
  registryHostname,
  requestProxies,
  schemesFor,
  storedCredentials,
  type DaemonRegistryConfig
} from './transport.js'

const CERTS_D = '/etc/docker/certs.d'

/** Clients of one run, kept from detection to the pushes (one connection pool per registry). */
const opened = new WeakMap<PushSettings, Map<string, Promise<RegistryClient>>>()

/** Reads a file of certs.d (one only root may read through sudo: its text never reaches argv). */
async function readAsRoot(runner: CommandRunner, file: string): Promise<string> {
  const text = await readFileMaybe(runner, file)
  if (text === undefined) throw new HostError(`${file} could not be read`)
  return text
}

async function listCertsDir(runner: CommandRunner, dir: string): Promise<string[]> {
  try {
    return await fs.readdir(dir)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return []
    if (code !== 'EACCES') throw e
    const r = await runner.run(['ls', '-1', '--', dir], {root: true})
    return r.stdout.split('\n').filter(Boolean)
  }
}

async function addresses(host: string): Promise<string[]> {
  if (isIP(host) !== 0) return [host]
  try {
    return (await dns.lookup(host, {all: true})).map(a => a.address)
  } catch {
    // An unknown name is secure by Docker's rule; connecting will say what is wrong.
    return []
  }
}

async function open(
  settings: PushSettings,
  registry: string,
  daemon: DaemonRegistryConfig,
  runner: CommandRunner
): Promise<RegistryClient> {
  const dir = path.join(CERTS_D, registry)
  let files
  try {
    files = certFiles(await listCertsDir(runner, dir))
  } catch (e) {
    throw new HostError(`${dir}: ${errorMessage(e)}`)
  }
  const read = (name: string): Promise<string> => readAsRoot(runner, path.join(dir, name))
  const cas = await Promise.all(files.cas.map(read))
  const ours = registry === settings.registry.text
  if (ours && settings.registryCa !== undefined)
    cas.push(await readAsRoot(runner, settings.registryCa))
  const pair = files.pairs[0]
  const client = pair ? {cert: await read(pair.cert), key: await read(pair.key)} : undefined
  const secure = isSecureRegistry(registry, daemon, await addresses(registryHostname(registry)))
  core.debug(`${registry}: ${secure ? 'secure' : 'insecure'} registry, ${cas.length} extra CA(s)`)
  return new RegistryClient({
    host: registry,
    schemes: schemesFor(secure),
    cas,
    client,
    ...((ours ? settings.login : undefined) ?? (await savedLogin(runner, registry))),
    proxies: requestProxies(settings.proxies, daemon.proxies, process.env)
  })
}

/**
 * The client configs a `docker push` of this job would read, in order: this process's own
 * (DOCKER_CONFIG, else ~/.docker: where a `docker login` step put it), then, not root, root's
 * (docker under sudo reads that one).
 */
function clientConfigs(runner: CommandRunner): string[] {
  const own = process.env.DOCKER_CONFIG || path.join(os.homedir(), '.docker')
  const files = [path.join(own, 'config.json')]
  if (!runner.isRoot) files.push('/root/.docker/config.json')
  return files
}

/** What a credential helper holds for a registry (`docker-credential-<name> get`, via stdin). */
async function fromHelper(
  runner: CommandRunner,
  helper: string,
  registry: string,
  root: boolean
): Promise<Login | undefined> {
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

/**
 * The credentials an earlier `docker login` left for `registry`, as `docker push` would find
 * them (config.json's auths, or its credential helper); none when there are none.
 */
async function savedLogin(runner: CommandRunner, registry: string): Promise<Login | undefined> {
  for (const file of clientConfigs(runner)) {
    const root = file.startsWith('/root/') && !runner.isRoot
    const text = root
      ? await readFileMaybe(runner, file)
      : await fs.readFile(file, 'utf8').catch(() => undefined)
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

/** The client for `registry` in this run (opened on first use; reads certs.d). */
export function registryClient(
  settings: PushSettings,
  registry: string,
  daemon: DaemonRegistryConfig,
  runner: CommandRunner
): Promise<RegistryClient> {
  let clients = opened.get(settings)
  if (!clients) {
    clients = new Map<string, Promise<RegistryClient>>()
    opened.set(settings, clients)
  }
  let client = clients.get(registry)
  if (!client) {
    client = open(settings, registry, daemon, runner)
    clients.set(registry, client)
    client.catch(() => clients.delete(registry))
  }
  return client
}

/** Closes this run's registry connections. */
export async function closeRegistries(settings: PushSettings): Promise<void> {
  const clients = opened.get(settings)
  opened.delete(settings)
  for (const c of clients?.values() ?? []) (await c.catch(() => undefined))?.close()
}

/** What the registry holds for a tag, with the size of every manifest an index lists. */
export async function remoteImage(
  client: RegistryClient,
  repository: string,
  tag: string
): Promise<RemoteImage | undefined> {
  const m = await client.manifest(repository, tag)
  if (!m) return undefined
  const parts = isIndex(m)
    ? (await Promise.all(m.manifests.map(async d => client.manifest(repository, d.digest)))).filter(
        x => x !== undefined
      )
    : [m]
  return {digest: m.digest, config: m.config?.digest, layers: m.layers, bytes: imageBytes(parts)}
}
