import {readFileSync} from 'node:fs'
import {describe, expect, it} from '@jest/globals'
import {
  aptLockHeld,
  closeDebSet,
  parseDebControl,
  parseDpkgQuery,
  parseMadison,
  parseRecommends,
  parseSimulatedRemovals,
  parsePolicy,
  resolvePin,
  upstreamVersion,
  versionMatchesPin,
  type DebInfo
} from '../../src/models/apt-model.js'

const fixture = (name: string): string => readFileSync(`__fixtures__/apt/${name}`, 'utf8')

describe('apt output parsers', () => {
  it('parses dpkg-query: installed only', () => {
    expect(parseDpkgQuery(fixture('dpkg-query-debian12.txt'))).toEqual(
      new Map([
        ['containerd', '1.6.20~ds1-1+deb12u3'],
        ['docker.io', '20.10.24+dfsg1-1+deb12u1+b6'],
        ['runc', '1.1.5+ds1-1+deb12u1']
      ])
    )
    expect(parseDpkgQuery('docker.io\t20.10\trc \nrunc\t1.1\thi \n')).toEqual(
      new Map([['runc', '1.1']])
    )
  })

  it('parses apt-cache policy candidates', () => {
    expect(parsePolicy(fixture('policy-debian12.txt'))).toEqual(
      new Map([
        ['docker.io', '20.10.24+dfsg1-1+deb12u1+b6'],
        ['docker-ce', undefined],
        ['containerd', '1.6.20~ds1-1+deb12u3']
      ])
    )
  })

  it('parses apt-cache madison, newest first', () => {
    expect(parseMadison(fixture('madison-docker-ce-ubuntu.txt'))).toEqual([
      '5:27.3.1-1~ubuntu.24.04~noble',
      '5:27.3.0-1~ubuntu.24.04~noble',
      '5:27.2.1-1~ubuntu.24.04~noble',
      '5:26.1.4-1~ubuntu.24.04~noble'
    ])
  })

  it('parses dpkg-deb -f control fields', () => {
    const deb = parseDebControl('/d/docker.io.deb', fixture('dpkg-deb-f-docker.io.txt'))
    expect(deb.name).toBe('docker.io')
    expect(deb.version).toBe('20.10.24+dfsg1-1+deb12u1+b6')
    expect(deb.depends).toContainEqual(['init-system-helpers'])
    expect(deb.depends).toContainEqual(['containerd'])
    expect(deb.depends).toContainEqual(['tini'])
    expect(
      parseDebControl('x', 'Package: a\nVersion: 1\nDepends: b | c (>= 2),\n d:any\nProvides: e')
        .depends
    ).toEqual([['b', 'c'], ['d']])
  })
})

describe('version pins', () => {
  const ce = parseMadison(fixture('madison-docker-ce-ubuntu.txt'))
  it.each([
    ['27.3.1', ce, '5:27.3.1-1~ubuntu.24.04~noble'],
    ['27.3.0', ce, '5:27.3.0-1~ubuntu.24.04~noble'],
    ['5:27.2.1-1~ubuntu.24.04~noble', ce, '5:27.2.1-1~ubuntu.24.04~noble'],
    ['27.2.1-1~ubuntu.24.04~noble', ce, '5:27.2.1-1~ubuntu.24.04~noble'],
    ['20.10.24', ['20.10.24+dfsg1-1+deb12u1+b6'], '20.10.24+dfsg1-1+deb12u1+b6'],
    ['27.9.9', ce, undefined],
    ['27.3', ce, undefined]
  ])('%s', (pin, available, expected) => {
    expect(resolvePin(pin, available)).toBe(expected)
  })

  it('compares installed versions with pins', () => {
    expect(upstreamVersion('5:27.3.1-1~ubuntu.24.04~noble')).toBe('27.3.1')
    expect(versionMatchesPin('20.10.24+dfsg1-1+deb12u1+b6', '20.10.24')).toBe(true)
    expect(versionMatchesPin('20.10.24+dfsg1-1+deb12u1+b6', '20.10.25')).toBe(false)
  })
})

describe('closeDebSet', () => {
  const deb = (name: string, depends: string[][] = [], provides: string[] = []): DebInfo => ({
    file: `/debs/${name}.deb`,
    name,
    version: '1',
    depends,
    provides
  })
  const debs = [
    deb('docker.io', [['containerd'], ['runc'], ['tini'], ['libc6'], ['iptables']]),
    deb('containerd', [['runc']]),
    deb('runc', [['libc6']]),
    deb('tini'),
    deb('unrelated')
  ]

  it('takes the dependency closure from the folder, skipping what is installed', () => {
    const {files, missing} = closeDebSet(['docker.io'], debs, new Set(['libc6', 'iptables']))
    expect(files.map(f => f.name).sort()).toEqual(['containerd', 'docker.io', 'runc', 'tini'])
    expect(missing).toEqual([])
  })

  it('names what is neither installed nor in the folder', () => {
    const {missing} = closeDebSet(['docker.io'], debs, new Set(['libc6']))
    expect(missing).toEqual(['iptables'])
  })

  it('accepts an alternative or a provided name', () => {
    const set = [deb('a', [['x', 'y']]), deb('z', [], ['y'])]
    expect(closeDebSet(['a'], set, new Set()).files.map(f => f.name)).toEqual(['a', 'z'])
  })
})

describe('aptLockHeld', () => {
  it.each([
    [
      'E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)\nE: Unable to lock directory /var/lib/apt/lists/',
      {lock: '/var/lib/apt/lists/lock', holder: 'process 4242 (apt-get)'}
    ],
    [
      'E: Could not get lock /var/cache/apt/archives/lock. It is held by process 77 (unattended-upgr)',
      {lock: '/var/cache/apt/archives/lock', holder: 'process 77 (unattended-upgr)'}
    ],
    [
      'E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 12\nE: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?',
      {lock: '/var/lib/dpkg/lock-frontend', holder: 'process 12'}
    ],
    [
      'E: Could not get lock /var/lib/dpkg/lock - open (11: Resource temporarily unavailable)',
      {lock: '/var/lib/dpkg/lock', holder: undefined}
    ],
    [
      'E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?',
      {lock: '/var/lib/dpkg/lock-frontend'}
    ],
    ['E: Unable to lock the download directory', {lock: '/var/cache/apt/archives/lock'}],
    [
      'dpkg: error: dpkg frontend lock was locked by another process with pid 901\nNote: removing the lock file is always wrong',
      {lock: '/var/lib/dpkg/lock-frontend', holder: 'process 901'}
    ],
    [
      'dpkg: error: dpkg frontend is locked by another process',
      {lock: '/var/lib/dpkg/lock-frontend', holder: undefined}
    ],
    [
      'dpkg: error: dpkg status database is locked by another process',
      {lock: '/var/lib/dpkg/lock', holder: undefined}
    ]
  ])('names the lock and its holder in %j', (output, held) => {
    expect(aptLockHeld(output)).toEqual(held)
  })

  it('is undefined for failures that are not about a lock', () => {
    expect(aptLockHeld('E: Unable to locate package docker-ce')).toBeUndefined()
    expect(aptLockHeld('')).toBeUndefined()
  })
})

describe('what apt would do', () => {
  it('reads the removals of a simulated install', () => {
    const out =
      'NOTE: This is only a simulation!\nRemv docker-cli [26.1.5+dfsg1-9+deb13u1+b1]\nRemv docker-compose [1.29.2-6]\nInst docker-ce-cli (5:28.5.2-1~debian.13~trixie Docker CE:trixie [amd64])\nConf docker-ce-cli (5:28.5.2-1~debian.13~trixie Docker CE:trixie [amd64])\n'
    expect(parseSimulatedRemovals(out)).toEqual(['docker-cli', 'docker-compose'])
    expect(parseSimulatedRemovals('')).toEqual([])
  })

  it("reads a package's recommends, first alternatives, without versions", () => {
    const show =
      'Package: docker-ce\nVersion: 5:28.5.2-1~debian.13~trixie\nDepends: containerd.io (>= 1.7.27), docker-ce-cli\nRecommends: apparmor, ca-certificates, docker-ce-rootless-extras, git, iptables,\n libltdl7, pigz, procps, xz-utils | lzma (>= 1.0)\nSuggests: aufs-tools\n'
    expect(parseRecommends(show)).toEqual([
      'apparmor',
      'ca-certificates',
      'docker-ce-rootless-extras',
      'git',
      'iptables',
      'libltdl7',
      'pigz',
      'procps',
      'xz-utils'
    ])
    expect(parseRecommends('Package: x\nVersion: 1\n')).toEqual([])
  })
})
