/** Parsing of /etc/os-release and what follows from it for Docker's apt repository (pure). */

export interface OsRelease {
  id: string
  idLike: string[]
  versionId: string
  codename: string
  prettyName: string
}

/** Parses the KEY=value lines of os-release(5), quotes removed. */
export function parseOsRelease(text: string): OsRelease {
  const vars: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim())
    if (!m) continue
    vars[m[1]] = m[2].replace(/^(["'])(.*)\1$/, '$2')
  }
  const id = (vars.ID ?? 'linux').toLowerCase()
  const idLike = (vars.ID_LIKE ?? '').toLowerCase().split(/\s+/).filter(Boolean)
  // Derivatives (Mint, Pop!_OS) carry the Ubuntu codename Docker's repository is keyed by.
  const family = dockerFamily(id, idLike)
  const codename =
    family === 'ubuntu' && vars.UBUNTU_CODENAME
      ? vars.UBUNTU_CODENAME
      : (vars.VERSION_CODENAME ?? vars.UBUNTU_CODENAME ?? '')
  return {
    id,
    idLike,
    versionId: vars.VERSION_ID ?? '',
    codename,
    prettyName: vars.PRETTY_NAME ?? id
  }
}

function dockerFamily(id: string, idLike: string[]): 'ubuntu' | 'debian' | undefined {
  if (id === 'ubuntu' || id === 'debian') return id
  if (idLike.includes('ubuntu')) return 'ubuntu'
  if (idLike.includes('debian')) return 'debian'
  return undefined
}

/** Docker's repository for this distribution (`…/linux/ubuntu` or `…/linux/debian`), or undefined when it has none. */
export function defaultDockerAptUrl(os: OsRelease): string | undefined {
  const family = dockerFamily(os.id, os.idLike)
  return family ? `https://download.docker.com/linux/${family}` : undefined
}
