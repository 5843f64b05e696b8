/** Processes as /proc/<pid>/stat shows them (read directly, as every user may): alive or not, and told apart from a later one reusing the pid. */
import {readFileSync} from 'node:fs'

/** Is this pid a live process? Root's processes count (EPERM); a zombie has exited and does not. */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

/** One process, told apart from a later one that reuses its pid by its start time. */
export interface ProcessIdentity {
  pid: number
  /** Start time in clock ticks after boot (/proc/<pid>/stat, field 22): never shared by two processes with one pid. */
  start: string
  /** The command name the kernel keeps (comm), e.g. Runner.Worker. */
  name: string
  /** The parent's pid. */
  ppid: number
}

/**
 * Parses /proc/<pid>/stat (pure). The name sits in parentheses and may hold spaces or ')', so the
 * fields are counted from the last ')'. Undefined for a zombie: it has exited.
 */
export function parseProcStat(pid: number, text: string): ProcessIdentity | undefined {
  const open = text.indexOf('(')
  const close = text.lastIndexOf(')')
  if (open < 0 || close < open) return undefined
  // After the name: state (field 3), ppid (4), … starttime (22).
  const rest = text.slice(close + 2).split(' ')
  const start = rest[19]
  if (rest[0] === 'Z' || rest[0] === 'X' || !/^\d+$/.test(start ?? '')) return undefined
  return {pid, start, name: text.slice(open + 1, close), ppid: Number(rest[1])}
}

/** The pid's identity from /proc (readable by every user); undefined when it is gone or a zombie. */
export function processIdentity(pid: number): ProcessIdentity | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined
  try {
    return parseProcStat(pid, readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return undefined
  }
}

/** True while the process that had this pid and start time still runs. */
export function sameProcessAlive(pid: number, start: string): boolean {
  return processIdentity(pid)?.start === start
}
