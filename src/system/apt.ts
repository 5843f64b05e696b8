import type {CommandRunner} from '../exec/runner.js'
import {
  APT_ENV,
  APT_OPTIONS,
  parseDebControl,
  parseDpkgQuery,
  parseMadison,
  parsePolicy,
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
