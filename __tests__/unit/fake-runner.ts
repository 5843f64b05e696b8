import {Readable} from 'node:stream'
import type {
  CommandResult,
  CommandRunner,
  RunOptions,
  StreamedCommand
} from '../../src/exec/runner.js'
import {CommandError} from '../../src/errors.js'

/** A CommandRunner that records argv and answers from a table (first matching prefix wins). */
export class FakeRunner implements CommandRunner {
  readonly calls: {argv: string[]; options: RunOptions}[] = []

  /** What streamed commands print, by argv prefix (first match wins). */
  readonly streams: [string[], Buffer, Partial<CommandResult>?][] = []

  constructor(
    private readonly answers: [string[], Partial<CommandResult>][] = [],
    readonly isRoot = true
  ) {}

  stream(argv: readonly string[], options: RunOptions = {}): StreamedCommand {
    this.calls.push({argv: [...argv], options})
    const hit = this.streams.find(([prefix]) => prefix.every((p, i) => argv[i] === p))
    const data = hit?.[1] ?? Buffer.alloc(0)
    // Small chunks, as a pipe delivers them.
    const chunks = Array.from({length: Math.ceil(data.length / 7000)}, (_, i) =>
      data.subarray(i * 7000, (i + 1) * 7000)
    )
    const stdout = Readable.from(chunks)
    const done = new Promise<CommandResult>(resolve =>
      stdout.once('close', () => resolve({exitCode: 0, stdout: '', stderr: '', ...hit?.[2]}))
    )
    return {stdout, done, kill: () => stdout.destroy()}
  }

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
