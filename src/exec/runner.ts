/** The CommandRunner and its real one: argv arrays (never a shell) through @actions/exec or spawn, with timeout, sudo and the proxy variables sudo must keep. */
import {spawn} from 'node:child_process'
import type {Readable} from 'node:stream'
import {getExecOutput} from '@actions/exec'
import * as core from '@actions/core'
import {CommandError, HostError, errorMessage, tailLines} from '../errors.js'

/** What one command returned. */
export interface CommandResult {
  exitCode: number
  stdout: string
  stderr: string
}

/** How one command runs: as root, with stdin or extra environment, bounded, allowed to fail. */
export interface RunOptions {
  /** Needs root: prefixed with `sudo -n` when the action does not run as root. */
  root?: boolean
  /** Written to the command's stdin (how secrets reach commands: never argv). */
  input?: string
  /** Extra environment for this command only (passed through `env` under sudo). */
  env?: Record<string, string>
  /** Return a non-zero exit instead of throwing CommandError. */
  allowFailure?: boolean
  /** Kill the command after this many seconds (coreutils `timeout`); exit code 124 then. */
  timeoutSeconds?: number
  /** Why the command runs, for the error message when it fails. */
  context?: string
}

/** A command whose stdout is read as it comes (an image export of many gigabytes). */
export interface StreamedCommand {
  readonly stdout: Readable
  /** Settles when the command has ended: its exit code and stderr (stdout is empty here). */
  readonly done: Promise<CommandResult>
  /** Ends the command early, when its reader gives up. */
  kill(): void
}

/** Runs argv arrays (never shell strings). Effect code gets one injected; unit tests record argv. */
export interface CommandRunner {
  readonly isRoot: boolean
  run(argv: readonly string[], options?: RunOptions): Promise<CommandResult>
  /** Starts a command whose stdout the caller reads as a stream; root and env as for run. */
  stream(argv: readonly string[], options?: Pick<RunOptions, 'root' | 'env'>): StreamedCommand
  /**
   * Starts a long-lived process in its own session, output appended to `logFile`, and returns
   * without waiting. The runner's RUNNER_TRACKING_ID is left out of its environment, so the runner
   * does not kill it when the job ends.
   */
  spawnDetached(
    argv: readonly string[],
    options: {root?: boolean; logFile: string}
  ): Promise<number>
}

/** argv that runs `argv` with stdout and stderr appended to `logFile`; the script is constant, argv stays argv. */
export function withLogFile(argv: readonly string[], logFile: string): string[] {
  return ['sh', '-c', 'log=$1; shift; exec "$@" >>"$log" 2>&1 </dev/null', 'sh', logFile, ...argv]
}

/**
 * Proxy variables sudo must keep: its env_reset drops them, and apt, the key downloads and a
 * dockerd this action starts need them on a runner behind a proxy.
 */
export const KEPT_UNDER_SUDO = [
  'http_proxy',
  'https_proxy',
  'no_proxy',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY'
] as const

/** The names of KEPT_UNDER_SUDO set in `env` (names only: their values never reach argv). */
export function keptUnderSudo(env: NodeJS.ProcessEnv): string[] {
  return KEPT_UNDER_SUDO.filter(k => env[k] !== undefined && env[k] !== '')
}

/**
 * Builds the argv actually executed: timeout, sudo and env prefixes, in that order. Under sudo,
 * `keep` names variables of this process's environment that sudo passes on (--preserve-env).
 */
export function wrapArgv(
  argv: readonly string[],
  options: RunOptions,
  isRoot: boolean,
  keep: readonly string[] = []
): string[] {
  let out = [...argv]
  const env = Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`)
  const sudo = options.root === true && !isRoot
  if (sudo && env.length > 0) out = ['env', ...env, ...out]
  if (sudo) {
    const preserve = keep.length > 0 ? [`--preserve-env=${keep.join(',')}`] : []
    out = ['sudo', '-n', ...preserve, '--', ...out]
  }
  if (options.timeoutSeconds !== undefined) {
    out = ['timeout', '-k', '2', String(options.timeoutSeconds), ...out]
  }
  return out
}

/** The real CommandRunner over @actions/exec; the only importer of it. */
export class ExecRunner implements CommandRunner {
  readonly isRoot: boolean

  constructor(isRoot = process.getuid?.() === 0) {
    this.isRoot = isRoot
  }

  async run(argv: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
    const full = wrapArgv(argv, options, this.isRoot, keptUnderSudo(process.env))
    core.debug(`exec: ${JSON.stringify(full)}`)
    // Under sudo the extra environment is in argv (env(1)); sudo would drop it otherwise.
    const sudo = options.root === true && !this.isRoot
    const env =
      options.env && !sudo ? {...stringEnv(process.env), ...options.env} : stringEnv(process.env)
    const result = await getExecOutput(full[0], full.slice(1), {
      silent: true,
      ignoreReturnCode: true,
      input: options.input === undefined ? undefined : Buffer.from(options.input),
      env
    }).catch((e: unknown) => {
      // A program that cannot be started (not installed) is a host failure like a failed one.
      throw new HostError(errorMessage(e), {cause: e})
    })
    if (result.exitCode !== 0 && options.allowFailure !== true) {
      throw new CommandError(
        argv,
        result.exitCode,
        tailLines(result.stderr || result.stdout),
        options.context
      )
    }
    return {exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr}
  }

  stream(argv: readonly string[], options: Pick<RunOptions, 'root' | 'env'> = {}): StreamedCommand {
    const full = wrapArgv(argv, options, this.isRoot)
    core.debug(`exec: ${JSON.stringify(full)}`)
    const sudo = options.root === true && !this.isRoot
    const env =
      options.env && !sudo ? {...stringEnv(process.env), ...options.env} : stringEnv(process.env)
    const child = spawn(full[0], full.slice(1), {stdio: ['ignore', 'pipe', 'pipe'], env})
    let stderr = ''
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (d: string) => {
      // Only the end of it can explain a failure.
      stderr = (stderr + d).slice(-8192)
    })
    const done = new Promise<CommandResult>((resolve, reject) => {
      child.once('error', e => reject(new HostError(errorMessage(e), {cause: e})))
      child.once('close', code => resolve({exitCode: code ?? 128, stdout: '', stderr}))
    })
    return {stdout: child.stdout, done, kill: () => child.kill()}
  }

  async spawnDetached(
    argv: readonly string[],
    options: {root?: boolean; logFile: string}
  ): Promise<number> {
    const full = wrapArgv(
      withLogFile(argv, options.logFile),
      {root: options.root},
      this.isRoot,
      keptUnderSudo(process.env)
    )
    core.debug(`spawn: ${JSON.stringify(full)}`)
    const env = stringEnv(process.env)
    delete env.RUNNER_TRACKING_ID
    const child = spawn(full[0], full.slice(1), {detached: true, stdio: 'ignore', env})
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('error', reject)
      child.once('spawn', () => resolve(child.pid ?? 0))
    })
    child.unref()
    return pid
  }
}

function stringEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v
  return out
}
