/** The registry's htpasswd file (pure): bcrypt entries, and whether a file still matches the input. */
import bcrypt from 'bcryptjs'
import type {HtpasswdEntry} from './inputs.js'

/** bcrypt cost: the registry checks every request against it, so not higher than needed. */
const COST = 10

/** An htpasswd file for the entries (bcrypt, as the distribution registry requires). */
export function renderHtpasswd(entries: readonly HtpasswdEntry[]): string {
  return entries.map(e => `${e.user}:${bcrypt.hashSync(e.password, COST)}\n`).join('')
}

/** True when `text` holds exactly these users, each with its password (a new salt changes nothing). */
export function htpasswdMatches(text: string, entries: readonly HtpasswdEntry[]): boolean {
  const lines = text.split('\n').filter(l => l.trim() !== '')
  if (lines.length !== entries.length) return false
  const hashes = new Map(
    lines.map(l => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)] as const)
  )
  return entries.every(e => {
    const hash = hashes.get(e.user)
    return hash !== undefined && /^\$2[aby]\$/.test(hash) && bcrypt.compareSync(e.password, hash)
  })
}
