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

/** A command that exited non-zero where success was required; carries what is needed to explain it. */
export class CommandError extends Error {
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

/** A host state the action refuses to change (e.g. snap docker, a missing engine with install-docker: false). */
export class HostError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'HostError'
  }
}

/** Last `n` lines of a command's output, for error messages that stay readable. */
export function tailLines(text: string, n = 15): string {
  const lines = text.trimEnd().split('\n')
  return lines.slice(-n).join('\n')
}
