/**
 * What a run of the bundled action left behind, read the way the runner reads it (GITHUB_OUTPUT,
 * GITHUB_STATE, GITHUB_ENV, the step summary, the debug log), and helpers to explain it. The runs
 * themselves happen in disposable hosts (bed/box.ts).
 */
import {readFileSync, rmSync} from 'node:fs'

export interface ActionRun {
  code: number
  stdout: string
  stderr: string
  outputs: Record<string, string>
  /** What the run saved for its post step (GITHUB_STATE). */
  state: Record<string, string>
  /** What the run exported to the job's later steps (GITHUB_ENV). */
  exported: Record<string, string>
  summary: string
  /** argv of every command the action ran, from its debug log. */
  commands: string[][]
  /** The `::error::` line, if any. */
  error?: string
  seconds: number
}

/** Parses GITHUB_OUTPUT's `name<<delimiter` blocks. */
export function parseOutputFile(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const m = /^([^<=]+)<<(.+)$/.exec(lines[i])
    if (!m) continue
    const value: string[] = []
    for (i++; i < lines.length && lines[i] !== m[2]; i++) value.push(lines[i])
    out[m[1]] = value.join('\n')
  }
  return out
}

export interface RunOptions {
  /** Run as this user (through runuser), like a runner service that is not root. */
  user?: string
  /** Wrap the process, e.g. ['unshare', '-n'] for a run without network. */
  wrap?: string[]
  /** Run the post step with the state the main step saved (the runner passes it as STATE_*). */
  post?: Record<string, string>
  env?: Record<string, string>
  /** The sub-action to run (its dist/<entry>.js), e.g. 'push'; the root action when absent. */
  entry?: string
}

/** Reads back what a finished run wrote, and removes its temp folder. */
export function collect(
  p: {tmp: string; files: Record<'out' | 'summary' | 'state' | 'env', string>},
  code: number | null,
  stdout: string,
  stderr: string,
  seconds: number
): ActionRun {
  const run: ActionRun = {
    code: code ?? -1,
    stdout,
    stderr,
    outputs: parseOutputFile(readFileSync(p.files.out, 'utf8')),
    state: parseOutputFile(readFileSync(p.files.state, 'utf8')),
    exported: parseOutputFile(readFileSync(p.files.env, 'utf8')),
    summary: readFileSync(p.files.summary, 'utf8'),
    commands: stdout
      .split('\n')
      .filter(l => l.startsWith('::debug::exec: ') || l.startsWith('::debug::spawn: '))
      .map(l => JSON.parse(l.replace(/^::debug::(exec|spawn): /, '')) as string[]),
    error: stdout.split('\n').find(l => l.startsWith('::error::')),
    seconds
  }
  rmSync(p.tmp, {recursive: true, force: true})
  return run
}

/** A run in the background: its output so far, and its result once it ends. */
export interface BackgroundRun {
  output(): string
  running(): boolean
  done: Promise<ActionRun>
}

/** Waits until `cond` holds (polling), failing after `ms`. */
export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(r => setTimeout(r, 100))
  }
}

/** Text for a failed expectation: what the action printed. */
export function explain(run: ActionRun): string {
  return `exit ${run.code}\n--- stdout ---\n${run.stdout.slice(-6000)}\n--- stderr ---\n${run.stderr.slice(-3000)}`
}

/** True when a command of the run's argv starts with one of these programs (after sudo/env/timeout). */
export function ran(run: ActionRun, program: string): boolean {
  return run.commands.some(argv => {
    const rest = [...argv]
    for (;;) {
      if (rest[0] === 'sudo') rest.splice(0, 3)
      else if (rest[0] === 'timeout') rest.splice(0, 4)
      else if (rest[0] === 'env') {
        rest.shift()
        while (rest[0]?.includes('=')) rest.shift()
      } else break
    }
    return rest[0] === program
  })
}

/** The action's one-line failure as the runner would show it. */
export function errorLine(run: ActionRun): string {
  return (run.error ?? '').replace(/^::error::/, '').replace(/%0A/g, '\n')
}

/** Fails with what the action printed when it did not succeed (jest's expect cannot say why). */
export function expectSuccess(run: ActionRun): void {
  if (run.code !== 0) throw new Error(`the action failed: ${explain(run)}`)
}
