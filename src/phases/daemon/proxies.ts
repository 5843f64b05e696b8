/** The daemon's proxies: what it reports (docker info), and before Docker 23 its systemd drop-in and environment file, written, removed and verified. */
import {withoutCredentials} from '../../docker/proxy.js'
import {HostError} from '../../errors.js'
import type {CommandRunner} from '../../exec/runner.js'
import {readFileMaybe, removeFile, writeFileAtomic} from '../../system/files.js'
import type {PhaseContext} from '../pipeline.js'
import type {DaemonSettings} from './inputs.js'
import type {DaemonPlan} from './plan.js'
import {
  PROXY_DROP_IN,
  PROXY_ENV_FILE,
  runningMatches,
  type DaemonProxyFacts,
  type ProxyAction,
  type RunningProxies
} from './proxy-plan.js'

type Ctx = PhaseContext<DaemonSettings>

/** The proxies the running daemon reports (docker info); undefined when it does not answer. */
export async function runningProxies(runner: CommandRunner): Promise<RunningProxies | undefined> {
  const r = await runner.run(
    ['docker', 'info', '--format', '{{json .HTTPProxy}}\t{{json .HTTPSProxy}}\t{{json .NoProxy}}'],
    {root: true, allowFailure: true, timeoutSeconds: 15}
  )
  if (r.exitCode !== 0) return undefined
  try {
    const [http, https, noProxy] = r.stdout
      .trim()
      .split('\t')
      .map(v => JSON.parse(v) as string)
    return {http, https, noProxy}
  } catch {
    return undefined
  }
}

/** The installed dockerd's version (`dockerd --version`); undefined when there is none. */
async function engineVersion(runner: CommandRunner): Promise<string | undefined> {
  const r = await runner.run(['dockerd', '--version'], {root: true, allowFailure: true})
  return r.exitCode === 0 ? /version (\d+\.\d+\.\d+\S*?),?\s/.exec(`${r.stdout} `)?.[1] : undefined
}

/** What the daemon's proxies depend on: engine version, systemd, our drop-in, what runs now. */
export async function detectDaemonProxies(ctx: Ctx): Promise<DaemonProxyFacts | undefined> {
  if (!ctx.inputs.proxies) return undefined
  const [version, dropIn, envFile, running] = await Promise.all([
    engineVersion(ctx.runner),
    readFileMaybe(ctx.runner, PROXY_DROP_IN),
    readFileMaybe(ctx.runner, PROXY_ENV_FILE),
    runningProxies(ctx.runner)
  ])
  return {engineVersion: version, systemd: ctx.host.systemd, dropIn, envFile, running}
}

/**
 * Writes or removes the drop-in and its environment file (the values first, 0600: a proxy URL may
 * carry a password), or reloads systemd's units, as planned.
 */
export async function applyProxyAction(ctx: Ctx, action: ProxyAction): Promise<void> {
  if (action.kind === 'write-dropin') {
    await writeFileAtomic(ctx.runner, PROXY_ENV_FILE, action.env, 0o600, ctx.host.tempDir)
    await writeFileAtomic(ctx.runner, PROXY_DROP_IN, action.text, 0o644, ctx.host.tempDir)
  } else if (action.kind === 'remove-dropin') {
    await removeFile(ctx.runner, PROXY_DROP_IN)
    await removeFile(ctx.runner, PROXY_ENV_FILE)
  } else {
    await ctx.runner.run(['systemctl', 'daemon-reload'], {root: true})
  }
}

/** After a change: the running daemon must report the proxies (docker info), whichever way they went. */
export async function verifyDaemonProxies(p: DaemonPlan, ctx: Ctx): Promise<string> {
  const proxies = ctx.inputs.proxies
  if (!proxies || p.proxyWay === undefined) return ''
  const running = await runningProxies(ctx.runner)
  if (running === undefined) return ''
  if (!runningMatches(running, proxies)) {
    const hint =
      p.proxyWay === 'dockerd environment'
        ? ' A dockerd started by an init script gets no environment from this action: set the proxies in /etc/default/docker (export http_proxy=…), or let this action start dockerd.'
        : p.proxyWay === 'systemd drop-in'
          ? ` Another drop-in of docker.service that sorts after ${PROXY_DROP_IN} may set them too (systemctl cat docker).`
          : ''
    throw new HostError(
      `Docker does not report the proxies after the change: HTTP proxy ${JSON.stringify(withoutCredentials(running.http))}, HTTPS proxy ${JSON.stringify(withoutCredentials(running.https))}, no proxy ${JSON.stringify(running.noProxy)}.${hint}`
    )
  }
  return `; proxies through ${p.proxyWay}`
}
