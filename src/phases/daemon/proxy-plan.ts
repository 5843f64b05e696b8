/**
 * How the daemon gets the proxies (pure): daemon.json `proxies` on Docker 23 and later; before
 * that a systemd drop-in (then daemon-reload); on a host without systemd, only the environment
 * of the dockerd this action starts. Whatever the way, the running daemon must report them.
 */
import type {Fragment} from '../../docker/daemon-fragment.js'
import {
  daemonProxyFragment,
  noProxyText,
  proxyDropIn,
  proxyEnvFile,
  withoutCredentials,
  type Proxies
} from '../../docker/proxy.js'

/**
 * The drop-in this action owns. systemd reads drop-ins in name order and a later Environment= of
 * the same variable wins: the name sorts after the usual http-proxy.conf, so the inputs win.
 */
export const PROXY_DROP_IN = '/etc/systemd/system/docker.service.d/zz-docker-gpu-setup-proxy.conf'
/**
 * The proxies' values for the drop-in's EnvironmentFile= (0600 root). An EnvironmentFile= value
 * overrides any Environment= of the unit, so the inputs win here too.
 */
export const PROXY_ENV_FILE = '/etc/docker-gpu-setup/docker-proxy.env'

/** The first version whose daemon.json has `proxies`. */
const DAEMON_JSON_PROXIES = 23

/** The proxies a daemon reports (`docker info`), its password shown masked. */
export interface RunningProxies {
  http: string
  https: string
  noProxy: string
}

/** What the daemon phase knows about proxies; detected only when a proxy is set. */
export interface DaemonProxyFacts {
  /** `dockerd --version`'s version; undefined when dockerd is not installed. */
  engineVersion?: string
  systemd: boolean
  /** PROXY_DROP_IN's text; undefined when there is none. */
  dropIn?: string
  /** PROXY_ENV_FILE's text (read as root); undefined when there is none. */
  envFile?: string
  /** What the running daemon reports; undefined when it does not answer. */
  running?: RunningProxies
}

/** A change to the drop-in, and systemd's reload that makes it count. */
export type ProxyAction =
  | {kind: 'write-dropin'; text: string; env: string}
  | {kind: 'remove-dropin'}
  | {kind: 'daemon-reload'}

/** How the proxies reach the daemon on this host, for the log and the summary. */
export type ProxyWay = 'daemon.json' | 'systemd drop-in' | 'dockerd environment'

/** What the proxies add to the daemon phase's plan. */
export interface DaemonProxyPlan {
  way?: ProxyWay
  fragments: Fragment[]
  actions: ProxyAction[]
  /** Why the daemon must restart for them; undefined when it need not. */
  restart?: string
  warnings: string[]
}

/** The major version of `Docker version 20.10.24+dfsg1, build …`'s version part. */
export function engineMajor(version: string | undefined): number | undefined {
  const m = /^(\d+)\./.exec(version ?? '')
  return m ? Number(m[1]) : undefined
}

/** True when the running daemon reports exactly these proxies (credentials aside: Docker masks them). */
export function runningMatches(running: RunningProxies, p: Proxies): boolean {
  return (
    withoutCredentials(running.http) === withoutCredentials(p.http ?? '') &&
    withoutCredentials(running.https) === withoutCredentials(p.https ?? '') &&
    running.noProxy === noProxyText(p)
  )
}

/** The drop-in when the engine has no daemon.json proxies: written when it differs. */
function dropInPlan(facts: DaemonProxyFacts, p: Proxies): DaemonProxyPlan {
  const text = proxyDropIn(PROXY_ENV_FILE)
  const env = proxyEnvFile(p)
  if (facts.dropIn === text && facts.envFile === env)
    return {way: 'systemd drop-in', fragments: [], actions: [], warnings: []}
  return {
    way: 'systemd drop-in',
    fragments: [],
    actions: [{kind: 'write-dropin', text, env}, {kind: 'daemon-reload'}],
    restart: `the proxies changed (${PROXY_DROP_IN})`,
    warnings: []
  }
}

/**
 * Plans how the daemon gets the proxies (pure): the fragment, drop-in changes and the restart
 * reason. Nothing when no proxy is set or dockerd is not installed yet (a dry run).
 */
export function planDaemonProxies(
  facts: DaemonProxyFacts | undefined,
  p: Proxies | undefined
): DaemonProxyPlan {
  const major = engineMajor(facts?.engineVersion)
  if (!facts || !p || major === undefined) return {fragments: [], actions: [], warnings: []}
  const stale = facts.running !== undefined && !runningMatches(facts.running, p)
  if (major >= DAEMON_JSON_PROXIES) {
    const moved = facts.dropIn !== undefined
    return {
      way: 'daemon.json',
      fragments: [daemonProxyFragment(p)],
      actions: moved ? [{kind: 'remove-dropin'}, {kind: 'daemon-reload'}] : [],
      restart: moved
        ? `the proxies moved from ${PROXY_DROP_IN} to daemon.json`
        : stale
          ? 'the running daemon has not loaded the proxies'
          : undefined,
      warnings: []
    }
  }
  if (facts.systemd) {
    const plan = dropInPlan(facts, p)
    return plan.restart || !stale
      ? plan
      : {...plan, restart: 'the running daemon has not loaded the proxies'}
  }
  return {
    way: 'dockerd environment',
    fragments: [],
    actions: [],
    restart: stale ? 'dockerd runs without the proxies in its environment' : undefined,
    warnings: [
      `Docker ${facts.engineVersion} has no proxies in daemon.json (Docker 23 and later) and this host has no systemd for a drop-in: the proxies reach dockerd only through the environment of the dockerd this action starts${stale ? ', so Docker restarts now' : ''}. A dockerd started any other way (an init script, a reboot) runs without them until this action restarts it.`
    ]
  }
}
