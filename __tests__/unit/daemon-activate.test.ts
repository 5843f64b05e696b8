/**
 * The reload / protected-restart paths of the daemon phase against a simulated host: the runner
 * keeps daemon.json as files it was asked to write, and a daemon that reads it on reload (the keys
 * dockerd reloads) and on restart (all of them), answering `docker info` from what it read.
 */
import {readFileSync} from 'node:fs'
import * as os from 'node:os'
import {describe, expect, it} from '@jest/globals'
import type {CommandResult, RunOptions} from '../../src/exec/runner.js'
import {activate, type Written} from '../../src/phases/daemon/activate.js'
import type {DaemonSettings} from '../../src/phases/daemon/inputs.js'
import {DAEMON_JSON, type DaemonAction} from '../../src/phases/daemon/plan.js'
import {RELOADABLE_KEYS} from '../../src/phases/daemon/reload.js'
import type {PhaseContext} from '../../src/phases/pipeline.js'
import {parseOsRelease} from '../../src/system/os-release.js'
import {FakeRunner} from './fake-runner.js'
import {ME, settingsWith} from './inputs-helper.js'

type Config = Record<string, unknown>

/** A host whose daemon.json and dockerd live in memory; a runner that is not root (all through sudo). */
class SimulatedHost extends FakeRunner {
  files = new Map<string, string>()
  daemon: Config = {}
  restarts = 0
  reloads = 0
  /** dockerd ignores live-restore (an engine that refuses it). */
  refuseLiveRestore = false

  constructor() {
    super([], false)
  }

  private file(): Config {
    return JSON.parse(this.files.get(DAEMON_JSON) ?? '{}') as Config
  }

  override run(argv: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
    this.calls.push({argv: [...argv], options})
    const a = argv[0] === 'sudo' ? argv.slice(argv.indexOf('--') + 1) : [...argv]
    const ok = (stdout = ''): Promise<CommandResult> =>
      Promise.resolve({exitCode: 0, stdout, stderr: ''})
    if (a[0] === 'install' && a[1] === '-m') this.files.set(a[4], readFileSync(a[3], 'utf8'))
    else if (a[0] === 'mv') this.files.set(a[4], this.files.get(a[3]) ?? '')
    else if (a[0] === 'cp' && this.files.has(a[a.length - 2])) {
      this.files.set(a[a.length - 1], this.files.get(a[a.length - 2]) ?? '')
    } else if (a[0] === 'rm') this.files.delete(a[a.length - 1])
    else if (a[0] === 'cat') {
      const text = this.files.get(a[2])
      return Promise.resolve({exitCode: text === undefined ? 1 : 0, stdout: text ?? '', stderr: ''})
    } else if (a[0] === 'systemctl' && a[1] === 'reload') {
      this.reloads++
      const next = this.file()
      for (const k of RELOADABLE_KEYS) if (k in next) this.daemon[k] = next[k]
      if (this.refuseLiveRestore) delete this.daemon['live-restore']
    } else if (a[0] === 'systemctl' && a[1] === 'start' && a.includes('docker.service')) {
      this.restarts++
      this.daemon = this.file()
      if (this.refuseLiveRestore) delete this.daemon['live-restore']
    } else if (a[0] === 'systemctl' && a[1] === 'show') return ok('LoadState=loaded\n')
    else if (a[0] === 'systemctl' && a[1] === 'is-failed') {
      return Promise.resolve({exitCode: 1, stdout: '', stderr: ''})
    } else if (a[0] === 'docker' && a[1] === 'version') return ok('20.10.24\n')
    else if (a[0] === 'docker' && a[1] === 'info') {
      return ok(
        JSON.stringify({
          Runtimes: {runc: {}, ...(this.daemon.runtimes as object)},
          DefaultRuntime: this.daemon['default-runtime'] ?? 'runc',
          LiveRestoreEnabled: this.daemon['live-restore'] === true
        })
      )
    }
    return ok()
  }
}

function context(
  runner: SimulatedHost,
  raw: Record<string, string> = {}
): PhaseContext<DaemonSettings> & {warnings: string[]} {
  const warnings: string[] = []
  return {
    inputs: settingsWith({'gpu-runtime': 'none', ...raw}).daemon,
    host: {
      os: parseOsRelease('ID=debian\n'),
      isRoot: false,
      user: 'runner',
      systemd: true,
      tempDir: os.tmpdir(),
      identity: ME
    },
    runner,
    outputs: {},
    warn: m => warnings.push(m),
    remember: () => undefined,
    show: () => undefined,
    warnings
  }
}

const LOG_OPTS = {'log-opts': {'max-size': '10m'}}

function restartAction(
  o: Partial<Extract<DaemonAction, {kind: 'restart'}>> = {}
): Extract<DaemonAction, {kind: 'restart'}> {
  return {
    kind: 'restart',
    reason: 'log-opts only apply when dockerd starts',
    config: LOG_OPTS,
    reload: [],
    restart: ['log-opts'],
    workloads: ['train-42'],
    loaded: true,
    liveRestore: false,
    unprotectable: false,
    protect: {text: `${JSON.stringify({...LOG_OPTS, 'live-restore': true})}\n`},
    ...o
  }
}

describe('a restart that protects running containers', () => {
  it('turns live-restore on by reload, restarts, and leaves it as the file has it (not set)', async () => {
    const host = new SimulatedHost()
    host.files.set(DAEMON_JSON, `${JSON.stringify(LOG_OPTS)}\n`)
    const w: Written = {
      text: `${JSON.stringify(LOG_OPTS)}\n`,
      hadBackup: false,
      diff: ['+ log-opts']
    }
    const report = await activate(context(host), restartAction(), w)
    expect(report).toMatchObject({how: 'restart', protectedContainers: ['train-42']})
    expect(host.restarts).toBe(1)
    // The restart ran with live-restore on; then a reload turned it off and the file is as written.
    expect(host.daemon['live-restore']).toBe(false)
    expect(JSON.parse(host.files.get(DAEMON_JSON) ?? '')).toEqual(LOG_OPTS)
  })

  it('with nothing written this run (a proxy drop-in), still puts the file back as it was', async () => {
    const host = new SimulatedHost()
    const report = await activate(
      context(host),
      restartAction({
        config: {},
        restart: ['proxies'],
        protect: {text: '{"live-restore": true}\n'}
      }),
      undefined
    )
    expect(report.protectedContainers).toEqual(['train-42'])
    // There was no daemon.json before: there is none after, and live-restore is off again.
    expect(host.files.has(DAEMON_JSON)).toBe(false)
    expect(host.daemon['live-restore']).toBe(false)
  })

  it('an engine that does not turn live-restore on: refused before any restart, file put back', async () => {
    const host = new SimulatedHost()
    host.refuseLiveRestore = true
    host.files.set(DAEMON_JSON, `${JSON.stringify(LOG_OPTS)}\n`)
    const w: Written = {
      text: `${JSON.stringify(LOG_OPTS)}\n`,
      hadBackup: false,
      diff: ['+ log-opts']
    }
    await expect(activate(context(host), restartAction(), w)).rejects.toThrow(
      /did not turn live-restore on, so a restart would stop running containers \(train-42\)\. Nothing was restarted/
    )
    expect(host.restarts).toBe(0)
    expect(JSON.parse(host.files.get(DAEMON_JSON) ?? '')).toEqual(LOG_OPTS)
  }, 20_000)

  it('the same with allow-restart: restarts anyway, saying the containers stop', async () => {
    const host = new SimulatedHost()
    host.refuseLiveRestore = true
    const ctx = context(host, {'allow-restart': 'true'})
    const w: Written = {
      text: `${JSON.stringify(LOG_OPTS)}\n`,
      hadBackup: false,
      diff: ['+ log-opts']
    }
    const report = await activate(ctx, restartAction(), w)
    expect(host.restarts).toBe(1)
    expect(report.protectedContainers).toEqual([])
    expect(ctx.warnings[0]).toMatch(/restarting anyway \(allow-restart\), train-42 stop/)
  }, 20_000)
})

describe('a reload', () => {
  it('applies the keys in place: no restart, the API answered throughout', async () => {
    const host = new SimulatedHost()
    const config = {
      runtimes: {nvidia: {path: 'nvidia-container-runtime'}},
      'default-runtime': 'nvidia'
    }
    host.files.set(DAEMON_JSON, `${JSON.stringify(config)}\n`)
    const report = await activate(
      context(host),
      {
        kind: 'reload',
        config,
        reload: ['default-runtime', 'runtimes'],
        restart: [],
        workloads: ['train-42'],
        loaded: true,
        liveRestore: false,
        unprotectable: false
      },
      {text: JSON.stringify(config), hadBackup: false, diff: []}
    )
    expect(report).toMatchObject({how: 'reload', downtime: 0, protectedContainers: []})
    expect(host.reloads).toBe(1)
    expect(host.restarts).toBe(0)
  })
})
