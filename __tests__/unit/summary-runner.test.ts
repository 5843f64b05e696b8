import {describe, expect, it} from '@jest/globals'
import {CommandError, HostError} from '../../src/errors.js'
import {ExecRunner, withLogFile, wrapArgv} from '../../src/exec/runner.js'
import {formatBytes, renderSummary} from '../../src/summary.js'

describe('wrapArgv', () => {
  it('adds sudo only for root commands when not root, env through env(1)', () => {
    expect(wrapArgv(['apt-get', 'update'], {root: true, env: {A: '1'}}, false)).toEqual([
      'sudo',
      '-n',
      '--',
      'env',
      'A=1',
      'apt-get',
      'update'
    ])
    expect(wrapArgv(['apt-get', 'update'], {root: true, env: {A: '1'}}, true)).toEqual([
      'apt-get',
      'update'
    ])
    expect(wrapArgv(['docker', 'version'], {timeoutSeconds: 5}, false)).toEqual([
      'timeout',
      '-k',
      '2',
      '5',
      'docker',
      'version'
    ])
  })

  it('redirects a detached command with a constant script, argv kept as argv', () => {
    expect(withLogFile(['/usr/sbin/dockerd', '--debug'], '/var/log/x.log')).toEqual([
      'sh',
      '-c',
      'log=$1; shift; exec "$@" >>"$log" 2>&1 </dev/null',
      'sh',
      '/var/log/x.log',
      '/usr/sbin/dockerd',
      '--debug'
    ])
  })
})

describe('host failures', () => {
  it('are HostErrors, whether a command fails or cannot be started at all', async () => {
    expect(new CommandError(['false'], 1, '')).toBeInstanceOf(HostError)
    const runner = new ExecRunner(true)
    await expect(runner.run(['false'])).rejects.toBeInstanceOf(CommandError)
    await expect(runner.run(['dgs-no-such-program'])).rejects.toThrow(HostError)
    await expect(runner.run(['dgs-no-such-program'])).rejects.toThrow('dgs-no-such-program')
  })
})

describe('renderSummary', () => {
  const reports = [
    {
      phase: 'Docker engine',
      status: 'changed' as const,
      found: 'no engine',
      changes: ['install docker.io', 'start Docker'],
      result: 'Docker 20.10 running'
    },
    {phase: 'Local registry', status: 'unchanged' as const, found: 'a | b', changes: [], result: ''}
  ]

  it('renders a row per phase, warnings and outputs', () => {
    const md = renderSummary({
      reports,
      outputs: {dockerVersion: '20.10', registry: ''},
      warnings: ['careful'],
      dryRun: false,
      seconds: 1.25
    })
    expect(md).toContain('## docker-gpu-setup: 🔧 host updated (1.3 s)')
    expect(md).toContain(
      '| Docker engine | 🔧 changed | no engine | install docker.io<br>start Docker | Docker 20.10 running |'
    )
    expect(md).toContain('| Local registry | ✅ unchanged | a \\| b | — | — |')
    expect(md).toContain('- careful')
    expect(md).toContain('| `docker-version` | 20.10 |')
    expect(md).not.toContain('`registry`')
  })

  it('shows the pushed images from the outputs, one row each, and not as raw outputs', () => {
    const md = renderSummary({
      reports,
      outputs: {
        images: [
          {
            source: 'app:1',
            target: 'localhost:5000/app:1',
            digest: `sha256:${'a'.repeat(64)}`,
            size: 2_500_000,
            status: 'pushed'
          },
          {
            source: 'b:1',
            target: 'localhost:5000/b:1',
            digest: '',
            size: 0,
            status: 'failed',
            error: 'denied'
          }
        ]
      },
      warnings: [],
      dryRun: false,
      seconds: 1
    })
    expect(md).toContain(
      '| app:1 | localhost:5000/app:1 | `sha256:aaaaaaaaaaaa…` | 2.50 MB | pushed |'
    )
    expect(md).toContain('| b:1 | localhost:5000/b:1 | — | — | ❌ failed: denied |')
    expect(md).not.toContain('`images`')
    expect(md).not.toContain('`digests`')
  })

  it('says when nothing changed, when it was a dry run, and when it failed', () => {
    expect(
      renderSummary({reports: [reports[1]], outputs: {}, warnings: [], dryRun: false, seconds: 0.4})
    ).toContain('host already right: nothing changed')
    expect(
      renderSummary({reports, outputs: {}, warnings: [], dryRun: true, seconds: 0.4})
    ).toContain('dry run')
    const failed = renderSummary({
      reports,
      outputs: {},
      warnings: [],
      dryRun: false,
      seconds: 1,
      error: 'boom\nmore'
    })
    expect(failed).toContain('❌ failed')
    expect(failed).toContain('> **Error:** boom')
  })
})

describe('formatBytes', () => {
  it.each<[number, string]>([
    [528, '528 B'],
    [999, '999 B'],
    [1_000, '1.00 kB'],
    [2_280_000, '2.28 MB'],
    [20_973_568, '21.0 MB'],
    [534_774_784, '535 MB'],
    [999_600_000, '1.00 GB'],
    [5_370_000_000, '5.37 GB'],
    [12_000_000_000_000, '12.0 TB']
  ])('%i bytes → %s', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text)
  })
})
