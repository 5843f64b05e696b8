/**
 * The daemon's images as a push moves them: tagged, and exported as a `docker save` stream (begun
 * ahead of its turn while the image before it is sent); through the Engine API's socket when this
 * process may open it, else the docker CLI (with sudo when the action is not root).
 */
import {Readable} from 'node:stream'
import {HostError, errorMessage, tailLines} from '../errors.js'
import type {CommandResult, CommandRunner, StreamedCommand} from '../exec/runner.js'
import type {EngineApi} from './engine-api.js'

/** Tags the image `source` as `target` (`docker tag`); throws saying why it could not. */
export async function tagImage(
  runner: CommandRunner,
  api: EngineApi | undefined,
  source: string,
  target: string
): Promise<void> {
  if (api) {
    const colon = target.lastIndexOf(':')
    const repo = encodeURIComponent(target.slice(0, colon))
    const tag = encodeURIComponent(target.slice(colon + 1))
    await api.post(`/images/${source}/tag?repo=${repo}&tag=${tag}`)
    return
  }
  const r = await runner.run(['docker', 'tag', source, target], {root: true, allowFailure: true})
  if (r.exitCode !== 0) throw new HostError(tailLines(r.stderr || r.stdout, 3))
}

/** Starts the export of one image by ID: a `docker save` tar as it streams out of the daemon. */
export type ImageExporter = (id: string) => Promise<StreamedCommand>

/** Exports through the docker CLI (with sudo when the action is not root). */
export function cliExporter(runner: CommandRunner): ImageExporter {
  return id => Promise.resolve(runner.stream(['docker', 'save', id], {root: true}))
}

/** Exports straight from the daemon's socket (no docker process, no pipe between). */
export function engineExporter(api: EngineApi): ImageExporter {
  return async id => {
    // No limit on the wait: the daemon writes the whole image out before the first byte.
    const r = await api.get(`/images/get?names=${encodeURIComponent(id)}`, 0)
    let failed = ''
    if (r.status !== 200) {
      for await (const c of r.body) failed += String(c)
      failed = `Docker answered ${r.status}: ${failed.trim()}`
    }
    const done = new Promise<CommandResult>(resolve => {
      r.body.once('end', () => resolve({exitCode: failed ? 1 : 0, stdout: '', stderr: failed}))
      r.body.once('error', e => resolve({exitCode: 1, stdout: '', stderr: errorMessage(e)}))
      r.body.once('close', () =>
        resolve({exitCode: 1, stdout: '', stderr: 'the daemon closed the export early'})
      )
    })
    const stdout = failed ? Readable.from([]) : r.body
    return {stdout, done, kill: () => r.abort()}
  }
}

/**
 * Exports started before their turn: the daemon writes an image out (to its own temp folder)
 * before the first byte streams, so the next image's export is begun while the
 * current one is sent. At most `budget` bytes of images are begun and not yet taken (the daemon's
 * disk holds each meanwhile); an export nobody takes is stopped when dropped, or at the end.
 */
export class ReadAhead {
  private readonly started = new Map<string, {export: Promise<StreamedCommand>; size: number}>()
  private bytes = 0

  constructor(
    private readonly base: ImageExporter,
    private readonly budget = Number.POSITIVE_INFINITY
  ) {}

  /** Begins exporting `id` (of `size` bytes) now, for later, if the budget allows. */
  start(id: string, size: number): void {
    if (this.started.has(id) || this.bytes + size > this.budget) return
    const p = this.base(id)
    p.catch(() => undefined)
    this.started.set(id, {export: p, size})
    this.bytes += size
  }

  /** Takes `id`'s entry out of the budget. */
  private take(id: string): Promise<StreamedCommand> | undefined {
    const e = this.started.get(id)
    if (!e) return undefined
    this.started.delete(id)
    this.bytes -= e.size
    return e.export
  }

  /** The export of `id` begun ahead, else a new one. */
  readonly exporter: ImageExporter = id => this.take(id) ?? this.base(id)

  /** Stops `id`'s export if it was begun and not taken (its image needed no export after all). */
  drop(id: string): void {
    void this.take(id)?.then(
      s => s.kill(),
      () => undefined
    )
  }

  /** Stops the exports nobody took. */
  async stop(): Promise<void> {
    const left = [...this.started.values()]
    this.started.clear()
    this.bytes = 0
    for (const e of left) (await e.export.catch(() => undefined))?.kill()
  }
}
