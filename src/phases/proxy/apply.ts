/** Writes the proxies into the Docker client configs the plan names (every other key kept) and verifies them. */
import {hasCredentials} from '../../docker/proxy.js'
import {HostError} from '../../errors.js'
import {readFileMaybe, writeOwnedFile} from '../../system/files.js'
import type {PhaseContext} from '../pipeline.js'
import type {ProxySettings} from './inputs.js'
import type {ProxyPlan} from './plan.js'

type Ctx = PhaseContext<ProxySettings>

/** Writes each client config the plan names (atomically, keeping its owner and mode). */
export async function applyProxies(p: ProxyPlan, ctx: Ctx): Promise<void> {
  const {http, https} = ctx.inputs.proxies ?? {}
  const secret = [http, https].some(u => u !== undefined && hasCredentials(u))
  for (const w of p.writes) {
    await writeOwnedFile(w.path, w.text, 0o600, secret).catch((e: unknown) => {
      if ((e as NodeJS.ErrnoException).code !== 'EACCES') throw e
      throw new HostError(
        `${w.path} cannot be written by ${ctx.host.user} (a docker login run with sudo leaves it owned by root): give it back with sudo chown ${ctx.host.user} ${w.path}, and run again.`,
        {cause: e}
      )
    })
  }
}

/** Reads each written file back: it must be what the plan wrote. */
export async function verifyProxies(p: ProxyPlan, ctx: Ctx): Promise<string> {
  for (const w of p.writes) {
    if ((await readFileMaybe(ctx.runner, w.path)) !== w.text) {
      throw new HostError(`${w.path} does not hold the proxies after writing it`)
    }
  }
  return `proxies.default set in ${p.writes.map(w => w.path).join(', ')}`
}
