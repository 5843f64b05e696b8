import type {CommandResult, CommandRunner, RunOptions} from '../../src/exec/runner.js'
import {CommandError} from '../../src/errors.js'

/** A CommandRunner that records argv and answers from a table (first matching prefix wins). */
export class FakeRunner implements CommandRunner {
  readonly calls: {argv: string[]; options: RunOptions}[] = []

  constructor(
    private readonly answers: [string[], Partial<CommandResult>][] = [],
    readonly isRoot = true
  ) {}

  run(argv: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
    this.calls.push({argv: [...argv], options})
    const hit = this.answers.find(([prefix]) => prefix.every((p, i) => argv[i] === p))
    const result = {exitCode: 0, stdout: '', stderr: '', ...hit?.[1]}
    if (result.exitCode !== 0 && options.allowFailure !== true) {
      return Promise.reject(new CommandError(argv, result.exitCode, result.stderr))
    }
    return Promise.resolve(result)
  }

  spawnDetached(argv: readonly string[]): Promise<number> {
    this.calls.push({argv: [...argv], options: {}})
    return Promise.resolve(4242)
  }

  /** The commands run, as one line each. */
  lines(): string[] {
    return this.calls.map(c => c.argv.join(' '))
  }
}
