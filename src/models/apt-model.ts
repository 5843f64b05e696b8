/** apt and dpkg output parsing and argv building (pure). */

/**
 * Options every apt-get call gets: no prompts, keep the user's config files, and a short wait of
 * apt's own for dpkg's lock (the caller waits longer, saying who holds it: aptLockHeld).
 */
export const APT_OPTIONS = [
  '-y',
  '-q',
  '-o',
  'DPkg::Lock::Timeout=10',
  '-o',
  'Dpkg::Options::=--force-confdef',
  '-o',
  'Dpkg::Options::=--force-confold'
]

/**
 * Environment of every apt call: no prompts, and needrestart (Ubuntu's apt hook) only lists what
 * would need a restart. Its automatic mode would restart services, the runner's own among them
 * (its default exclusions do not cover actions.runner.*); Ubuntu 24.04 restarts by default.
 */
export const APT_ENV = {DEBIAN_FRONTEND: 'noninteractive', NEEDRESTART_MODE: 'l'}

/** How long apt commands wait for the locks of apt and dpkg another process holds (at least dpkg's 300 s). */
export const APT_LOCK_WAIT_S = 300

/** A lock apt or dpkg refused to take, and who holds it, as their own messages say. */
export interface AptLockHeld {
  lock: string
  /** e.g. "process 1234 (apt-get)"; undefined when the message does not say. */
  holder?: string
}

const LOCK_MESSAGES: [RegExp, (m: RegExpExecArray) => AptLockHeld][] = [
  // apt 1.9+: "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 1234 (apt-get)"
  [
    /Could not get lock (\/\S*?)\.?(?:\s|$)(?:It is held by (process \d+(?: \([^)]*\))?))?/,
    m => ({lock: m[1], holder: m[2]})
  ],
  [/Unable to acquire the dpkg frontend lock \((\S+)\)/, m => ({lock: m[1]})],
  [/Unable to lock directory (\S+)/, m => ({lock: m[1]})],
  [/Unable to lock the download directory/, () => ({lock: '/var/cache/apt/archives/lock'})],
  // dpkg itself (apt-mark goes through it): "dpkg frontend lock was locked by another process with pid 1234"
  [
    // dpkg before 1.21 says "dpkg frontend is locked".
    /dpkg (frontend(?: lock)?|status database) (?:was|is) locked by another process(?: with pid (\d+))?/,
    m => ({
      lock: m[1].startsWith('frontend') ? '/var/lib/dpkg/lock-frontend' : '/var/lib/dpkg/lock',
      holder: m[2] ? `process ${m[2]}` : undefined
    })
  ]
]

/** The lock an apt or dpkg failure was about, from its output; undefined for any other failure. */
export function aptLockHeld(output: string): AptLockHeld | undefined {
  for (const [re, read] of LOCK_MESSAGES) {
    const m = re.exec(output)
    if (m) return read(m)
  }
  return undefined
}

/** `dpkg-query -W -f '${Package}\t${Version}\t${db:Status-Abbrev}\n' names…` → installed package → version. */
export function parseDpkgQuery(text: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const line of text.split('\n')) {
    const [name, version, status] = line.split('\t')
    // "ii " installed, "hi " held and installed; "rc " is removed with config left: not installed.
    if (name && version && status && /^[ih]i/.test(status)) out.set(name, version)
  }
  return out
}

/** `apt-cache policy names…` → package → candidate version (undefined when apt knows none). */
export function parsePolicy(text: string): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>()
  let current: string | undefined
  for (const line of text.split('\n')) {
    const head = /^(\S+):$/.exec(line)
    if (head) {
      current = head[1]
      out.set(current, undefined)
      continue
    }
    const cand = /^\s+Candidate:\s+(\S+)/.exec(line)
    if (cand && current) out.set(current, cand[1] === '(none)' ? undefined : cand[1])
  }
  return out
}

/** The plan step for an apt-mark hold after an install: the pin, and holds the host had put back. */
export function describeHold(packages: readonly string[]): string {
  return `hold ${packages.join(', ')} at the installed version (apt-mark hold: the pin, and holds the host had)`
}

/** `apt-get -s install …` → the packages apt would remove (its `Remv NAME [VERSION]` lines). */
export function parseSimulatedRemovals(text: string): string[] {
  return [...text.matchAll(/^Remv (\S+)/gm)].map(m => m[1])
}

/** `apt-cache show --no-all-versions name` → its Recommends, the first of each set of alternatives. */
export function parseRecommends(text: string): string[] {
  const field = /^Recommends:\s*(.*(?:\n\s+.*)*)/m.exec(text)?.[1] ?? ''
  return field
    .split(',')
    .map(dep =>
      dep
        .split('|')[0]
        .trim()
        .replace(/\s*\(.*\)$/, '')
        .replace(/:any$/, '')
    )
    .filter(Boolean)
}

/** `apt-cache madison name` → versions, newest first as apt lists them. */
export function parseMadison(text: string): string[] {
  const out: string[] = []
  for (const line of text.split('\n')) {
    const cols = line.split('|').map(s => s.trim())
    if (cols.length >= 3 && cols[1] && !out.includes(cols[1])) out.push(cols[1])
  }
  return out
}

/** The upstream part of a Debian version: no epoch, no Debian revision. */
export function upstreamVersion(version: string): string {
  const noEpoch = version.replace(/^\d+:/, '')
  const dash = noEpoch.lastIndexOf('-')
  return dash > 0 ? noEpoch.slice(0, dash) : noEpoch
}

/**
 * Finds the package version a pin such as `27.3.1` means among `available` (newest first):
 * an exact match, the same without epoch, or the upstream version (ignoring `+dfsg…`/`~…` suffixes).
 */
export function resolvePin(pin: string, available: readonly string[]): string | undefined {
  const exact = available.find(v => v === pin || v.replace(/^\d+:/, '') === pin)
  if (exact) return exact
  return available.find(v => {
    const up = upstreamVersion(v)
    return up === pin || up.startsWith(`${pin}+`) || up.startsWith(`${pin}~`)
  })
}

/** True when `installed` is what `pin` names (same rules as resolvePin). */
export function versionMatchesPin(installed: string, pin: string): boolean {
  return resolvePin(pin, [installed]) !== undefined
}

/** Control fields of one .deb, from `dpkg-deb -f FILE Package Version Depends Pre-Depends Provides`. */
export interface DebInfo {
  file: string
  name: string
  version: string
  /** Each dependency as its alternatives' package names (versions ignored: apt checks those). */
  depends: string[][]
  provides: string[]
}

/** Parses `dpkg-deb -f` output (RFC 822 style, continuation lines folded). */
export function parseDebControl(file: string, text: string): DebInfo {
  const fields: Record<string, string> = {}
  let last: string | undefined
  for (const line of text.split('\n')) {
    if (/^\s/.test(line) && last) {
      fields[last] += ` ${line.trim()}`
      continue
    }
    const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line)
    if (m) {
      last = m[1].toLowerCase()
      fields[last] = m[2]
    }
  }
  const names = (list: string | undefined): string[][] =>
    (list ?? '')
      .split(',')
      .map(dep =>
        dep
          .split('|')
          .map(alt =>
            alt
              .trim()
              .replace(/\s*\(.*\)$/, '')
              .replace(/:any$/, '')
          )
          .filter(Boolean)
      )
      .filter(alts => alts.length > 0)
  return {
    file,
    name: fields.package ?? '',
    version: fields.version ?? '',
    depends: [...names(fields['pre-depends']), ...names(fields.depends)],
    provides: names(fields.provides).flat()
  }
}

/**
 * The .deb files needed to install `wanted` from `debs` (their dependency closure within the
 * folder), and the dependencies neither installed nor in the folder, by name.
 */
export function closeDebSet(
  wanted: readonly string[],
  debs: readonly DebInfo[],
  installed: ReadonlySet<string>
): {files: DebInfo[]; missing: string[]} {
  const byName = new Map<string, DebInfo>()
  for (const deb of debs) {
    for (const name of [deb.name, ...deb.provides]) if (!byName.has(name)) byName.set(name, deb)
  }
  const chosen = new Map<string, DebInfo>()
  const missing = new Set<string>()
  const queue = [...wanted]
  for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
    const deb = byName.get(name)
    if (!deb) {
      missing.add(name)
      continue
    }
    if (chosen.has(deb.name)) continue
    chosen.set(deb.name, deb)
    for (const alts of deb.depends) {
      if (alts.some(a => installed.has(a) || [...chosen.values()].some(d => d.name === a))) continue
      const inFolder = alts.find(a => byName.has(a))
      if (inFolder) queue.push(inFolder)
      else missing.add(alts.join(' | '))
    }
  }
  return {files: [...chosen.values()], missing: [...missing].sort()}
}

/** A source file's path and text. */
export interface SourceFile {
  path: string
  content: string
}

/** How a stale source is set aside: the whole file renamed, or only its entries disabled. */
export type SourceFix =
  {path: string; how: 'rename'} | {path: string; how: 'rewrite'; content: string; entries: number}

/** The system's main source file: never renamed, only edited. */
export const MAIN_SOURCES = '/etc/apt/sources.list'

/** Does this text (a one-line entry or a deb822 URIs field) name the repository? */
function namesRepo(text: string, url: string, needles: readonly string[]): boolean {
  const bare = url.replace(/^[a-z]+:\/\//, '').replace(/\/+$/, '')
  return [...needles, bare].some(n => text.includes(n))
}

/** One-line format: matching active entries commented out. */
function fixOneLine(
  file: SourceFile,
  url: string,
  needles: readonly string[]
): SourceFix | undefined {
  const lines = file.content.split('\n')
  const active = (l: string) => /^\s*deb(-src)?\s/.test(l)
  const hit = (l: string) => active(l) && namesRepo(l, url, needles)
  const hits = lines.filter(hit).length
  if (hits === 0) return undefined
  if (file.path !== MAIN_SOURCES && lines.every(l => !active(l) || hit(l))) {
    return {path: file.path, how: 'rename'}
  }
  const content = lines.map(l => (hit(l) ? `# disabled by docker-gpu-setup: ${l}` : l)).join('\n')
  return {path: file.path, how: 'rewrite', content, entries: hits}
}

/** deb822 format: matching enabled stanzas get `Enabled: no`. */
function fixDeb822(
  file: SourceFile,
  url: string,
  needles: readonly string[]
): SourceFix | undefined {
  const stanzas = file.content.split(/\n\s*\n/)
  const enabled = (st: string) => !/^Enabled:\s*no\s*$/im.test(st) && /^URIs:/im.test(st)
  const hit = (st: string) =>
    enabled(st) && st.split('\n').some(l => /^URIs:/i.test(l) && namesRepo(l, url, needles))
  const hits = stanzas.filter(hit).length
  if (hits === 0) return undefined
  if (stanzas.every(st => !enabled(st) || hit(st))) return {path: file.path, how: 'rename'}
  const content = stanzas
    .map(st =>
      hit(st) ? `${st.replace(/\n+$/, '')}\nEnabled: no${st.endsWith('\n') ? '\n' : ''}` : st
    )
    .join('\n\n')
  return {path: file.path, how: 'rewrite', content, entries: hits}
}

/**
 * How to set aside the entries of `files` that name the repository `url` (or one of `needles`)
 * without disturbing anything else: a file holding only such entries is renamed; in a file that
 * holds other repositories too (and always in /etc/apt/sources.list) only those entries are
 * disabled. With another `signed-by` they make `apt-get update` fail ("Conflicting values set for
 * option Signed-By"); with the same one they are duplicates.
 */
export function staleSourceFixes(
  files: readonly SourceFile[],
  url: string,
  needles: readonly string[]
): SourceFix[] {
  return files
    .map(f =>
      f.path.endsWith('.sources') ? fixDeb822(f, url, needles) : fixOneLine(f, url, needles)
    )
    .filter((f): f is SourceFix => f !== undefined)
}
