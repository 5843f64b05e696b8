/**
 * One job on a disposable host, run by the STAND-IN Runner.Worker (fixtures/runner-worker.sh): the
 * action's main step, a later step, its post step, and the runner's job hooks where its .env names
 * them. The files the worker writes (main.rc, post.rc, …) are in the job's folder in the box.
 */
import {LOCK_DIR} from '../../src/system/lock.js'
import type {Box} from './bed/box.js'
import {parseOutputFile, waitFor, type BackgroundRun} from './harness.js'

/** The `teardown` output. */
export interface TeardownOutput {
  removed: {kind: string; id: string; why: string}[]
  kept: {kind: string; id: string; why: string}[]
}

let runs = 0

export class RunnerJob {
  static readonly started: RunnerJob[] = []
  readonly dir: string
  run?: BackgroundRun

  /** `host`: the box, read when the job starts (jobs may be made before their box boots). */
  constructor(
    private readonly host: () => Box,
    readonly name: string,
    readonly opts: {user?: string; worker?: string; inputs?: Record<string, string>} = {}
  ) {
    this.dir = `/tmp/jobs/${name}`
  }

  get box(): Box {
    return this.host()
  }

  start(inputs: Record<string, string> = {}): this {
    RunnerJob.started.push(this)
    this.run = this.box.start(
      {...this.opts.inputs, ...inputs},
      {
        user: this.opts.user,
        wrap: [this.opts.worker ?? '/usr/local/bin/Runner.Worker', this.dir],
        env: {
          GITHUB_JOB: this.name,
          GITHUB_REPOSITORY: 'org/repo',
          GITHUB_RUN_ID: String(2000 + ++runs),
          RUNNER_NAME: `runner-${this.name}`
        }
      }
    )
    return this
  }

  /** The main step's exit code (or 'skipped', after a failed job-started hook) and outputs. */
  async main(): Promise<{rc: string; outputs: Record<string, string>}> {
    await waitFor(() => this.box.exists(`${this.dir}/main.rc`), 180_000, `${this.name}'s main step`)
    // main.rc is a file; the step's last lines may still be on their way through docker exec.
    await waitFor(
      () => this.output().includes('[stand-in worker] main step ended'),
      30_000,
      `the end of ${this.name}'s main step output`
    )
    return {
      rc: (this.box.read(`${this.dir}/main.rc`) ?? '').trim(),
      outputs: parseOutputFile(this.box.read(`${this.dir}/main.output`) ?? '')
    }
  }

  output(): string {
    return this.run?.output() ?? ''
  }

  /** The GPU the main step leased (one per job here). */
  gpu(): string {
    return parseOutputFile(this.box.read(`${this.dir}/main.output`) ?? '')['gpu-uuids']
  }

  /** When its lease was taken, from the lease file itself. */
  leasedAt(): number {
    const file = this.box.sh(`grep -l '"pid":${this.workerPid()},' ${LOCK_DIR}/*.lease`)
    return Date.parse((JSON.parse(this.box.read(file.trim()) ?? '{}') as {since: string}).since)
  }

  workerPid(): number {
    return Number(this.box.read(`${this.dir}/pid`))
  }

  /** The post step (or, with `cancel`, the runner's cancel first); resolves when the job ends. */
  async end(how: 'post' | 'cancel'): Promise<{rc: number; teardown: TeardownOutput; out: string}> {
    this.box.sh(`touch ${this.dir}/${how}`)
    const done = await this.run?.done
    return {
      rc: Number(this.box.read(`${this.dir}/post.rc`)),
      teardown: JSON.parse(done?.outputs.teardown || '{}') as TeardownOutput,
      out: done?.stdout ?? ''
    }
  }

  async kill(): Promise<void> {
    this.box.sh(`kill -9 "$(cat ${this.dir}/pid)"`)
    await this.run?.done
  }

  /** Ends the jobs a failed test left running, before their box goes. */
  static async killRunning(): Promise<void> {
    for (const j of RunnerJob.started.filter(j => j.run?.running())) {
      await j.kill().catch(() => undefined)
    }
  }
}
