import {promises as fs} from 'node:fs'
import * as os from 'node:os'
import type {HostInfo} from './pipeline.js'
import {exists} from './system/files.js'
import {parseOsRelease} from './system/os-release.js'

/** Reads the facts every phase shares: distribution, user, root or not, systemd or not. */
export async function readHost(env = process.env): Promise<HostInfo> {
  const text = await fs
    .readFile('/etc/os-release', 'utf8')
    .catch(() => fs.readFile('/usr/lib/os-release', 'utf8'))
    .catch(() => '')
  const isRoot = process.getuid?.() === 0
  const current = os.userInfo().username
  return {
    os: parseOsRelease(text),
    isRoot,
    user: isRoot ? (env.SUDO_USER ?? 'root') : current,
    systemd: await exists('/run/systemd/system'),
    tempDir: env.RUNNER_TEMP || os.tmpdir()
  }
}
