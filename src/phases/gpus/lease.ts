/**
 * A GPU lease as data (pure): the file that says which job holds a GPU. A lease belongs to the
 * job's worker process (the runner's Runner.Worker, parent of the action's node process, alive for
 * the whole job), named by pid and start time so that a later process reusing the pid is not it.
 */

/** The job that holds, or asks for, leases. */
export interface JobIdentity {
  /** The worker process: pid and start time (clock ticks after boot). */
  pid: number
  start: string
  /** Its command name, e.g. Runner.Worker. */
  process: string
  /** The job in words: name, repository, run, runner. */
  job: string
}

/** One lease file's content. */
export interface Lease {
  uuid: string
  index: number
  pid: number
  start: string
  job: string
  /** When it was taken (ISO time). */
  since: string
}

/** The lease file of a GPU (in the host lock folder). */
export function leaseFileName(uuid: string): string {
  return `${uuid}.lease`
}

/** The UUID a lease file is named after; undefined for any other file. */
export function uuidOfLeaseFile(name: string): string | undefined {
  return /^(GPU-[0-9a-fA-F-]+)\.lease$/.exec(name)?.[1]
}

/** The lease file's text: one JSON line. */
export function leaseText(lease: Lease): string {
  return `${JSON.stringify(lease)}\n`
}

/** Parses a lease file; undefined when it is not one (a damaged file is treated as no owner). */
export function parseLease(text: string): Lease | undefined {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    return undefined
  }
  const l = v as Partial<Lease> | null
  if (
    typeof l?.uuid !== 'string' ||
    typeof l.index !== 'number' ||
    typeof l.pid !== 'number' ||
    typeof l.start !== 'string' ||
    typeof l.job !== 'string'
  ) {
    return undefined
  }
  return {
    uuid: l.uuid,
    index: l.index,
    pid: l.pid,
    start: l.start,
    job: l.job,
    since: l.since ?? ''
  }
}

/** Is this lease held by that worker process (same pid, same start)? */
export function heldBy(lease: Pick<Lease, 'pid' | 'start'>, who: {pid: number; start: string}) {
  return lease.pid === who.pid && lease.start === who.start
}

/** The job in words, from the runner's variables (given as data). */
export function jobDescription(env: Readonly<Record<string, string | undefined>>): string {
  const job = env.GITHUB_JOB || 'unnamed'
  const where = [
    env.GITHUB_REPOSITORY && env.GITHUB_RUN_ID
      ? `${env.GITHUB_REPOSITORY} run ${env.GITHUB_RUN_ID}${env.GITHUB_RUN_ATTEMPT && env.GITHUB_RUN_ATTEMPT !== '1' ? ` attempt ${env.GITHUB_RUN_ATTEMPT}` : ''}`
      : undefined,
    env.RUNNER_NAME ? `runner ${env.RUNNER_NAME}` : undefined
  ].filter(Boolean)
  return where.length > 0 ? `${job} (${where.join(', ')})` : job
}

/** Who holds a lease, in words: the job and its worker process. */
export function holderText(lease: Lease): string {
  return `job ${lease.job}, worker pid ${lease.pid}${lease.since ? `, since ${lease.since}` : ''}`
}
