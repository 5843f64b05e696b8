/** apt and dpkg through the runner: what is installed, held and available, and installing, removing and holding packages. */
import {promises as fs} from 'node:fs'
import * as path from 'node:path'
import * as core from '@actions/core'
import type {CommandResult, CommandRunner} from '../exec/runner.js'
import {CommandError, HostError, tailLines} from '../errors.js'
import {
  APT_ENV,
  APT_LOCK_WAIT_S,
  APT_OPTIONS,
  aptLockHeld,
  parseDebControl,
  parseDpkgQuery,
  parseMadison,
  parseRecommends,
  parseSimulatedRemovals,
  parsePolicy,
  resolvePin,
  type DebInfo
} from '../models/apt-model.js'

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

/**
 * Runs an apt or dpkg command as root, waiting while another process holds one of their locks:
 * apt-daily, unattended-upgrades or cloud-init on a freshly booted host hold them for minutes, and
 * only dpkg's own lock has a wait of apt's (lists and archives locks fail at once). Failures about
 * a lock are retried until APT_LOCK_WAIT_S, saying who holds it; anything else fails at once.
 */
export async function aptRun(
  runner: CommandRunner,
  argv: readonly string[],
  context: string
): Promise<CommandResult> {
  const end = Date.now() + APT_LOCK_WAIT_S * 1000
  let told = ''
  for (;;) {
    const r = await runner.run(argv, {root: true, env: APT_ENV, allowFailure: true, context})
    if (r.exitCode === 0) return r
    const held = aptLockHeld(`${r.stderr}\n${r.stdout}`)
    if (held === undefined) {
      throw new CommandError(argv, r.exitCode, tailLines(r.stderr || r.stdout), context)
    }
    const who = held.holder ?? 'another process'
    if (Date.now() > end) {
      throw new HostError(
        `${context}: ${held.lock} is still held by ${who} after ${APT_LOCK_WAIT_S} s (on a freshly booted host, apt-daily, unattended-upgrades or cloud-init). Wait for it to finish, then run again.`
      )
    }
    const message = `Waiting for ${held.lock}, held by ${who} (another apt or dpkg run)`
    if (message !== told) core.info(message)
    told = message
    await new Promise(resolve => setTimeout(resolve, 2000))
  }
}

/** `apt-get update`, waiting for apt's locks. */
export async function aptUpdate(runner: CommandRunner): Promise<void> {
  await aptRun(runner, ['apt-get', ...APT_OPTIONS, 'update'], 'Refreshing the package lists')
}

/** Installs packages (`name` or `name=version`, or paths of .deb files), never prompting. */
export async function aptInstall(
  runner: CommandRunner,
  packages: readonly string[],
  extra: readonly string[] = []
): Promise<void> {
  await aptRun(
    runner,
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
    `Installing ${packages.join(' ')}`
  )
}

/** Removes packages; never purges (a purge of docker.io deletes /var/lib/docker). */
export async function aptRemove(runner: CommandRunner, packages: readonly string[]): Promise<void> {
  await aptRun(
    runner,
    ['apt-get', ...APT_OPTIONS, 'remove', '--allow-change-held-packages', ...packages],
    `Removing ${packages.join(' ')}`
  )
}

/** Holds or releases packages at their version (apt-mark, as root). */
export async function aptMark(
  runner: CommandRunner,
  how: 'hold' | 'unhold',
  packages: readonly string[]
): Promise<void> {
  await aptRun(runner, ['apt-mark', how, ...packages], `apt-mark ${how} ${packages.join(' ')}`)
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
  await aptInstall(runner, files, await noSourcesOptions(tempDir))
}

/** apt options that read no source list at all (an empty one, in a new folder of `tempDir`). */
export async function noSourcesOptions(tempDir: string): Promise<string[]> {
  // A new folder each time: a fixed name could be one another user prepared, with sources of theirs.
  const none = await fs.mkdtemp(path.join(tempDir, 'docker-gpu-setup-no-sources-'))
  await fs.mkdir(path.join(none, 'parts'))
  await fs.writeFile(path.join(none, 'sources.list'), '')
  return [
    '-o',
    `Dir::Etc::SourceList=${path.join(none, 'sources.list')}`,
    '-o',
    `Dir::Etc::SourceParts=${path.join(none, 'parts')}`
  ]
}

/**
 * The packages apt would remove to install `packages` (a simulation: `apt-get -s`, no root,
 * nothing changes). Empty when the simulation itself fails: the real install then says why.
 */
export async function simulatedRemovals(
  runner: CommandRunner,
  packages: readonly string[],
  extra: readonly string[] = []
): Promise<string[]> {
  const r = await runner.run(
    ['apt-get', '-s', '-q', ...extra, 'install', '--no-install-recommends', ...packages],
    {env: APT_ENV, allowFailure: true}
  )
  return r.exitCode === 0 ? parseSimulatedRemovals(r.stdout) : []
}

/** What `name` (or `name=version`) recommends, as its candidate in the package lists says. */
export async function recommendsOf(runner: CommandRunner, spec: string): Promise<string[]> {
  const r = await runner.run(['apt-cache', 'show', '--no-all-versions', spec], {
    allowFailure: true
  })
  return r.exitCode === 0 ? parseRecommends(r.stdout) : []
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
