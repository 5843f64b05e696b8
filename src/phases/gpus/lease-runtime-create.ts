/**
 * The gpu-lease runtime's `create` (run as root by Docker's shim, through the runtime script):
 * reads the bundle's config.json, finds the container's runner and its job's leases, and writes
 * the spec back with exactly those GPUs. Reads /run/docker-gpu-setup and /proc; writes config.json.
 */
import {promises as fs} from 'node:fs'
import {errorMessage} from '../../errors.js'
import * as path from 'node:path'
import {runnerFolder} from '../../system/actions-runner.js'
import {LOCK_DIR} from '../../system/lock.js'
import {sameProcessAlive} from '../../system/process.js'
import {
  leaseRefusal,
  leaseSpec,
  parseSpec,
  runnerRootOf,
  specText
} from '../../docker/lease-runtime.js'
import {parseLease, uuidOfLeaseFile} from './lease.js'

/**
 * The GPUs leased to the job that runs under the runner in `root`: leases whose worker still runs
 * (same pid and start) and lives in that runner's folder. A runner runs one job at a time.
 */
async function leasedTo(root: string): Promise<string[]> {
  const names = await fs.readdir(LOCK_DIR).catch(() => [])
  const uuids: string[] = []
  for (const name of names.sort()) {
    if (uuidOfLeaseFile(name) === undefined) continue
    const text = await fs.readFile(path.join(LOCK_DIR, name), 'utf8').catch(() => '')
    const lease = parseLease(text)
    if (!lease || !sameProcessAlive(lease.pid, lease.start)) continue
    if ((await runnerFolder(lease.pid)) === root) uuids.push(lease.uuid)
  }
  return uuids
}

/**
 * Rewrites `<bundle>/config.json`; a container of no runner, or of one without a lease, gets no GPU;
 * one given GPU device nodes directly is refused (throws: the create fails with the reason).
 */
async function rewriteSpec(bundle: string): Promise<void> {
  const file = path.join(bundle, 'config.json')
  const spec = parseSpec(await fs.readFile(file, 'utf8'))
  const refused = leaseRefusal(spec)
  if (refused !== undefined) throw new Error(refused)
  const root = runnerRootOf(spec)
  const uuids = root === undefined ? [] : await leasedTo(root)
  const tmp = `${file}.gpu-lease-${process.pid}`
  await fs.writeFile(tmp, specText(leaseSpec(spec, uuids)), {mode: 0o600})
  await fs.chmod(tmp, (await fs.stat(file)).mode & 0o777)
  await fs.rename(tmp, file)
}

/**
 * The runtime's `create` step; returns the exit status. A failure's reason goes to stderr and, as
 * runc writes its own (`--log-format json`), to the runtime's `--log` file, where containerd looks
 * for the reason it shows in Docker's error.
 */
export async function leaseRuntimeCreate(bundle: string, log: string): Promise<number> {
  try {
    await rewriteSpec(bundle)
    return 0
  } catch (e) {
    const msg = `gpu-lease: ${errorMessage(e)}`
    process.stderr.write(`${msg}\n`)
    if (log !== '') {
      const line = JSON.stringify({level: 'error', msg, time: new Date().toISOString()})
      await fs.appendFile(log, `${line}\n`).catch(() => undefined)
    }
    return 1
  }
}
