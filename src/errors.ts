/** The action's errors (pure): bad input (InputError), everything else (HostError, CommandError), and the one line each becomes. */

/** A bad input value: the message is the one line the step fails with. Thrown before any change. */
export class InputError extends Error {
  constructor(
    readonly input: string,
    readonly value: string,
    readonly accepted: string
  ) {
    super(`Input '${input}' has an invalid value ${JSON.stringify(value)}: ${accepted}`)
    this.name = 'InputError'
  }
}

/**
 * A failure of the host, found or caused while detecting or changing it (a state the action refuses
 * to change, a daemon that does not answer, a command that failed). Everything but bad input.
 */
export class HostError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'HostError'
  }
}

/** A command that exited non-zero where success was required; carries what is needed to explain it. */
export class CommandError extends HostError {
  constructor(
    readonly argv: readonly string[],
    readonly exitCode: number,
    readonly stderrTail: string,
    context?: string
  ) {
    const tail = stderrTail.trim()
    super(
      `${context ? `${context}: ` : ''}'${argv.join(' ')}' exited with code ${exitCode}` +
        (tail ? `: ${tail}` : '')
    )
    this.name = 'CommandError'
  }
}

/** Last `n` lines of a command's output, for error messages that stay readable. */
export function tailLines(text: string, n = 15): string {
  const lines = text.trimEnd().split('\n')
  return lines.slice(-n).join('\n')
}

/** The one line an error becomes in the log and the summary. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}
