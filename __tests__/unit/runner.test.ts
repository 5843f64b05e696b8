import {describe, expect, it} from '@jest/globals'
import {CommandError, HostError} from '../../src/errors.js'
import {ExecRunner, withLogFile, wrapArgv} from '../../src/exec/runner.js'

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
