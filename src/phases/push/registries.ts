/**
 * The run's registry clients, one per registry the targets name, each reaching its registry as
 * this host's daemon would (insecure-registries, /etc/docker/certs.d, proxies) with the login for
 * `registry` or what a `docker login` stored; opened by detection, handed to apply in the facts.
 */
import * as core from '@actions/core'
import type {Proxies} from '../../docker/proxy.js'
import {HostError, errorMessage} from '../../errors.js'
import type {CommandRunner} from '../../exec/runner.js'
import type {HostInfo} from '../../host.js'
import {clientConfigs, savedCredentials} from '../../registry-client/auth.js'
import {RegistryClient} from '../../registry-client/client.js'
import {
  readCertsD,
  registryEndpoint,
  registryIsSecure,
  requestProxies,
  schemesFor,
  usableProxy,
  type DaemonRegistryConfig
} from '../../registry-client/transport.js'
import type {PushTarget} from './image-list.js'
import type {PushSettings} from './inputs.js'

/**
 * Fails when the registry is reached through a proxy this Node cannot use, naming the way around
 * it: the client knows no inputs, so the hint is the push phase's to give.
 */
function refuseUnusableProxy(
  registry: string,
  secure: boolean,
  proxies: Proxies | undefined
): void {
  try {
    for (const s of schemesFor(secure)) usableProxy(registryEndpoint(registry), s.scheme, proxies)
  } catch (e) {
    throw new HostError(`${errorMessage(e)}: set push-method: docker`)
  }
}

/**
 * Clients of one run, by registry (one connection pool each), from detection to the pushes. Its
 * state is private (#): a plan that holds it never prints the login it keeps.
 */
export class RegistryPool {
  readonly #clients = new Map<string, Promise<RegistryClient>>()
  readonly #from: {
    settings: PushSettings
    daemon: DaemonRegistryConfig
    runner: CommandRunner
    host: HostInfo
  }

  constructor(
    settings: PushSettings,
    daemon: DaemonRegistryConfig,
    runner: CommandRunner,
    host: HostInfo
  ) {
    this.#from = {settings, daemon, runner, host}
  }

  /** The client for `registry` in this run (opened on first use; reads certs.d). */
  client(registry: string): Promise<RegistryClient> {
    let client = this.#clients.get(registry)
    if (!client) {
      client = this.open(registry)
      this.#clients.set(registry, client)
      client.catch(() => this.#clients.delete(registry))
    }
    return client
  }

  private async open(registry: string): Promise<RegistryClient> {
    const {settings, runner, daemon, host} = this.#from
    const ours = registry === settings.registry.text
    const {cas, client} = await readCertsD(runner, registry, ours ? settings.registryCa : undefined)
    const secure = await registryIsSecure(registry, daemon)
    core.debug(`${registry}: ${secure ? 'secure' : 'insecure'} registry, ${cas.length} extra CA(s)`)
    const login =
      (ours ? settings.login : undefined) ??
      (await savedCredentials(runner, registry, await clientConfigs(runner, host.dockerConfigDir)))
    const proxies = requestProxies(settings.proxies, daemon.proxies, process.env)
    refuseUnusableProxy(registry, secure, proxies)
    return new RegistryClient({
      host: registry,
      schemes: schemesFor(secure),
      cas,
      client,
      ...login,
      proxies
    })
  }

  /** Closes this run's registry connections. */
  async close(): Promise<void> {
    const open = [...this.#clients.values()]
    this.#clients.clear()
    for (const c of open) (await c.catch(() => undefined))?.close()
  }
}

/**
 * Proves a push landed: the registry must hold, for the tag, the digest the push reported. Reads
 * the image's size there (config and layers).
 */
export async function confirm(pool: RegistryPool, t: PushTarget, digest: string): Promise<number> {
  const held = await (await pool.client(t.registry)).image(t.repository, t.tag)
  if (held?.digest !== digest) {
    throw new HostError(
      `the push reported ${digest} but the registry holds ${held?.digest ?? 'nothing'} for ${t.tag}`
    )
  }
  return held.bytes
}
