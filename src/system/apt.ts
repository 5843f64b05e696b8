import {promises as fs} from 'node:fs'
import * as path from 'node:path'
import type {CommandRunner} from '../exec/runner.js'
import {HostError} from '../errors.js'
import {
  APT_ENV,
  APT_OPTIONS,
  parseDebControl,
  parseDpkgQuery,
  parseMadison,
  parsePolicy,
  resolvePin,
  type DebInfo
} from './apt-model.js'

/** Installed versions of `names` (absent names are not installed). Reads dpkg's database only. */
export async function installedPackages(
  runner: CommandRunner,
  names: readonly string[]
): Promise<Map<string, string>> {
  const r = await runner.run(
    ['dpkg-query', '-W', '-f', '${Package}\t${Version}\t${db:Status-Abbrev}\n', ...names],
    {allowFailure: true}
  )
  return parseDpkgQuery(r.stdout)
}

/** Every installed package's name and the virtual names installed packages provide. */
export async function providedNames(runner: CommandRunner): Promise<Set<string>> {
  const r = await runner.run([
    'dpkg-query',
    '-W',
    '-f',
    '${db:Status-Abbrev}\t${Package}\t${Provides}\n'
  ])
  const names = new Set<string>()
  for (const line of r.stdout.split('\n')) {
    const [status, name, provides] = line.split('\t')
    if (!status?.startsWith('ii') && !status?.startsWith('hi')) continue
    names.add(name)
    for (const p of (provides ?? '').split(',')) {
      const bare = p.trim().replace(/\s*\(.*\)$/, '')
      if (bare) names.add(bare)
    }
  }
  return names
}

/** Held packages (`apt-mark showhold`). */
export async function heldPackages(runner: CommandRunner): Promise<Set<string>> {
  const r = await runner.run(['apt-mark', 'showhold'], {allowFailure: true})
  return new Set(r.stdout.split('\n').filter(Boolean))
}

/** Candidate versions apt would install now (undefined: not in the package lists). */
export async function candidates(
  runner: CommandRunner,
  names: readonly string[]
): Promise<Map<string, string | undefined>> {
  const r = await runner.run(['apt-cache', 'policy', ...names], {allowFailure: true})
  const found = parsePolicy(r.stdout)
  return new Map(names.map(n => [n, found.get(n)]))
}

/** Versions of `name` in the package lists, newest first (`apt-cache madison`). */
export async function availableVersions(runner: CommandRunner, name: string): Promise<string[]> {
  const r = await runner.run(['apt-cache', 'madison', name], {allowFailure: true})
  return parseMadison(r.stdout)
}

/** Refreshes the package lists (apt-get update, as root). */
export async function aptUpdate(runner: CommandRunner): Promise<void> {
  await runner.run(['apt-get', ...APT_OPTIONS, 'update'], {
    root: true,
    env: APT_ENV,
    context: 'Refreshing the package lists'
  })
}

/** Installs packages (`name` or `name=version`, or paths of .deb files), never prompting. */
export async function aptInstall(
  runner: CommandRunner,
  packages: readonly string[],
  extra: readonly string[] = []
): Promise<void> {
  await runner.run(
    [
      'apt-get',
      ...APT_OPTIONS,
      ...extra,
      'install',
      '--no-install-recommends',
      '--allow-downgrades',
      '--allow-change-held-packages',
      ...packages
    ],
    {root: true, env: APT_ENV, context: `Installing ${packages.join(' ')}`}
  )
}

/** Removes packages; never purges (a purge of docker.io deletes /var/lib/docker). */
export async function aptRemove(runner: CommandRunner, packages: readonly string[]): Promise<void> {
  await runner.run(
    ['apt-get', ...APT_OPTIONS, 'remove', '--allow-change-held-packages', ...packages],
    {root: true, env: APT_ENV, context: `Removing ${packages.join(' ')}`}
  )
}

/** Holds or releases packages at their version (apt-mark, as root). */
export async function aptMark(
  runner: CommandRunner,
  how: 'hold' | 'unhold',
  packages: readonly string[]
): Promise<void> {
  await runner.run(['apt-mark', how, ...packages], {root: true})
}

/** Control fields of .deb files (dpkg-deb reads them; nothing is installed). */
export async function readDebs(
  runner: CommandRunner,
  files: readonly string[]
): Promise<DebInfo[]> {
  return Promise.all(
    files.map(async file => {
      const r = await runner.run(
        ['dpkg-deb', '-f', file, 'Package', 'Version', 'Pre-Depends', 'Depends', 'Provides'],
        {context: `Reading ${file}`}
      )
      return parseDebControl(file, r.stdout)
    })
  )
}

/**
 * Installs .deb files with no apt source read at all (air-gapped hosts): an empty source list, so
 * apt sees only the files given and what is installed. No `--no-download`: it makes apt look for
 * each file in its own cache (/var/cache/apt/archives) instead of the path given, which fails on
 * any host whose cache does not already hold them; the empty source list keeps apt off the network.
 */
export async function aptInstallOffline(
  runner: CommandRunner,
  files: readonly string[],
  tempDir: string
): Promise<void> {
  const none = path.join(tempDir, 'docker-gpu-setup-no-sources')
  await fs.mkdir(path.join(none, 'parts'), {recursive: true})
  await fs.writeFile(path.join(none, 'sources.list'), '')
  await aptInstall(runner, files, [
    '-o',
    `Dir::Etc::SourceList=${path.join(none, 'sources.list')}`,
    '-o',
    `Dir::Etc::SourceParts=${path.join(none, 'parts')}`
  ])
}

/** The .deb files in a folder, sorted. */
export async function listDebs(folder: string): Promise<string[]> {
  const names = await fs.readdir(folder)
  return names
    .filter(n => n.endsWith('.deb'))
    .sort()
    .map(n => path.join(folder, n))
}

/** `name=version` for each name at the version `pin` means; fails listing what is available. `what` names the input. */
export async function resolvePinned(
  runner: CommandRunner,
  names: readonly string[],
  pin: string,
  what: string
): Promise<string[]> {
  const out: string[] = []
  for (const name of names) {
    const versions = await availableVersions(runner, name)
    const version = resolvePin(pin, versions)
    if (version === undefined) {
      throw new HostError(
        `${what} ${pin} is not available for ${name}. Available: ${versions.slice(0, 15).join(', ') || 'none (is the repository reachable?)'}`
      )
    }
    out.push(`${name}=${version}`)
  }
  return out
}

/**
 * What an offline install needs to know: the control data of every .deb in `folder`, and the
 * names installed packages provide. Empty when there is no folder (nothing is read then).
 */
export async function readOfflineFolder(
  runner: CommandRunner,
  folder: string | undefined
): Promise<{debs: DebInfo[]; provided: Set<string>}> {
  if (folder === undefined) return {debs: [], provided: new Set()}
  const [debs, provided] = await Promise.all([
    readDebs(runner, await listDebs(folder)),
    providedNames(runner)
  ])
  return {debs, provided}
}
