import {describe, expect, it} from '@jest/globals'
import {
  DOCKER_KEYRING,
  DOCKER_LIST,
  dockerSourceLine,
  dockerUsers,
  groupMembers,
  planEngine,
  serverMatchesPackage,
  staleDockerSources,
  type EngineFacts
} from '../../src/phases/engine/plan.js'
import type {DebInfo} from '../../src/models/apt-model.js'
import {parseWith, type RawOverrides} from './inputs-helper.js'

const URL = 'https://download.docker.com/linux/debian'
const inputs = (o: RawOverrides = {}) => parseWith(o, {'/debs': 'dir'}).engine

/** A host with Debian's docker.io installed and running, the runner user in the group. */
function ready(o: Partial<EngineFacts> = {}): EngineFacts {
  return {
    dockerd: '/usr/sbin/dockerd',
    client: true,
    installed: new Map([
      ['docker.io', '20.10.24+dfsg1-1+deb12u1+b6'],
      ['containerd', '1.6.20~ds1-1+deb12u3'],
      ['runc', '1.1.5+ds1-1+deb12u1']
    ]),
    held: new Set(),
    snap: false,
    serverVersion: '20.10.24+dfsg1',
    manager: 'direct',
    dockerGroup: ['runner'],
    candidates: new Map(),
    debs: [],
    provided: new Set(),
    ...o
  }
}
const bare = (o: Partial<EngineFacts> = {}): EngineFacts =>
  ready({
    dockerd: undefined,
    installed: new Map(),
    serverVersion: undefined,
    dockerGroup: undefined,
    ...o
  })

const kinds = (facts: EngineFacts, raw: RawOverrides = {}, users = ['runner']) =>
  planEngine(facts, inputs(raw), URL, users).actions.map(a => a.kind)

describe('planEngine', () => {
  it("installs the distribution's separate client with docker.io where the lists have it", () => {
    const plan = planEngine(
      bare({candidates: new Map([['docker.io', '26.1.5']])}),
      inputs({'docker-source': 'distro'}),
      URL,
      []
    )
    expect(plan.actions[0]).toEqual({
      kind: 'install',
      packages: ['docker.io'],
      pinned: ['docker.io'],
      pin: undefined,
      ifAvailable: ['docker-cli']
    })
    expect(plan.steps[0].description).toBe(
      'install docker.io (and docker-cli where the distribution ships it apart)'
    )
  })

  it.each([
    ['distro', {}, 'docker-cli', ['install', 'start']],
    [
      'distro, lists without it',
      {candidates: new Map()},
      'docker-cli',
      ['apt-update', 'install', 'start']
    ],
    [
      'docker-ce',
      {installed: new Map([['docker-ce', '5:27.3.1']])},
      'docker-ce-cli',
      ['install', 'start']
    ]
  ] as const)(
    'a daemon with no docker client (%s) gets the client, nothing else',
    (_what, facts, client, planned) => {
      const host = ready({
        client: false,
        serverVersion: undefined,
        candidates: new Map([[client, '1']]),
        ...facts
      })
      const plan = planEngine(host, inputs({'docker-source': 'distro'}), URL, ['runner'])
      expect(plan.actions.map(a => a.kind)).toEqual(planned)
      expect(plan.actions.find(a => a.kind === 'install')).toMatchObject({packages: [client]})
      expect(plan.found).toBe(
        `Docker ${host.installed.get('docker-ce') ?? '20.10.24+dfsg1-1+deb12u1+b6'} (${client === 'docker-cli' ? 'docker.io' : 'docker-ce'}), no docker client, service: direct`
      )
      expect(plan.packagesChange).toBe(false)
    }
  )

  it('a daemon with no client and install-docker: false fails saying what is missing', () => {
    expect(() =>
      planEngine(ready({client: false}), inputs({'install-docker': 'false'}), URL, [])
    ).toThrow(
      'dockerd is installed but there is no docker client, and install-docker is false: install the docker client (Debian 13 and later ship it as docker-cli: sudo apt-get install docker-cli).'
    )
  })

  it('plans nothing on a host that is already right', () => {
    const plan = planEngine(ready(), inputs(), URL, ['runner'])
    expect(plan.actions).toEqual([])
    expect(plan.steps).toEqual([])
    expect(plan.packagesChange).toBe(false)
    expect(plan.found).toBe('Docker 20.10.24+dfsg1 (docker.io), running, service: direct')
  })

  it('never upgrades an existing engine with install-docker: auto, whatever the source', () => {
    expect(kinds(ready(), {'docker-source': 'docker', 'docker-version': '27.3.1'})).toEqual([])
  })

  it('starts a stopped engine, and only that', () => {
    expect(kinds(ready({serverVersion: undefined}))).toEqual(['start'])
  })

  it('installs from the distribution on a bare host, updating lists only when needed', () => {
    const withLists = bare({candidates: new Map([['docker.io', '20.10.24']])})
    expect(kinds(withLists, {'docker-source': 'distro'})).toEqual(['install', 'start', 'add-users'])
    expect(kinds(bare(), {'docker-source': 'distro'})).toEqual([
      'apt-update',
      'install',
      'start',
      'add-users'
    ])
  })

  it("installs from Docker's repository, removing conflicts (not purging) and holding a pin", () => {
    const facts = bare({
      installed: new Map([
        ['containerd', '1'],
        ['runc', '1']
      ]),
      held: new Set(['runc'])
    })
    const plan = planEngine(facts, inputs({'docker-version': '27.3.1'}), URL, [])
    expect(plan.actions).toEqual([
      {kind: 'docker-repo', url: URL},
      {kind: 'apt-update'},
      {kind: 'unhold', packages: ['runc']},
      {kind: 'remove', packages: ['containerd', 'runc']},
      {
        kind: 'install',
        packages: [
          'docker-ce',
          'docker-ce-cli',
          'containerd.io',
          'docker-buildx-plugin',
          'docker-compose-plugin'
        ],
        pin: '27.3.1',
        pinned: ['docker-ce', 'docker-ce-cli'],
        recommendsOf: 'docker-ce'
      },
      {kind: 'hold', packages: ['docker-ce', 'docker-ce-cli']},
      {kind: 'start'}
    ])
    expect(plan.steps.map(s => s.description)).toContain(
      'remove conflicting packages (not purged): containerd, runc'
    )
  })

  it('switches source with install-docker: true, stopping a dockerd it started itself after the lists are checked', () => {
    const plan = planEngine(ready({ownDockerdPid: 42}), inputs({'install-docker': 'true'}), URL, [])
    expect(plan.actions.map(a => a.kind)).toEqual([
      'docker-repo',
      'apt-update',
      'stop-own-dockerd',
      'remove',
      'install',
      'start'
    ])
    expect(plan.actions[3]).toEqual({kind: 'remove', packages: ['docker.io', 'containerd', 'runc']})
    expect(plan.warnings[0]).toContain('running containers restart')
    expect(plan.packagesChange).toBe(true)
  })

  it('leaves a pinned engine that matches alone with install-docker: true', () => {
    expect(
      kinds(ready(), {
        'install-docker': 'true',
        'docker-source': 'distro',
        'docker-version': '20.10.24'
      })
    ).toEqual([])
    expect(
      kinds(ready(), {
        'install-docker': 'true',
        'docker-source': 'distro',
        'docker-version': '20.10.25'
      })
    ).toContain('install')
  })

  it('fails clearly without an engine when install-docker is false', () => {
    expect(() => planEngine(bare(), inputs({'install-docker': 'false'}), URL, [])).toThrow(
      'Docker Engine is not installed (no dockerd) and install-docker is false'
    )
  })

  it('fails for a distribution Docker has no repository for', () => {
    expect(() => planEngine(bare(), inputs(), undefined, [])).toThrow(
      'Docker publishes no apt repository for this distribution'
    )
  })

  it('installs offline from the folder, naming missing dependencies before any change', () => {
    const deb = (name: string, depends: string[][] = []): DebInfo => ({
      file: `/debs/${name}.deb`,
      name,
      version: '1',
      depends,
      provides: []
    })
    const raw = {'docker-source': 'offline', 'offline-debs': '/debs'}
    const debs = [deb('docker.io', [['containerd'], ['iptables']]), deb('containerd')]
    expect(() => planEngine(bare({debs}), inputs(raw), URL, [])).toThrow(
      'lacks dependencies that are not installed either: iptables'
    )
    const ok = planEngine(bare({debs, provided: new Set(['iptables'])}), inputs(raw), URL, [])
    expect(ok.actions[0]).toEqual({
      kind: 'install-debs',
      files: ['/debs/docker.io.deb', '/debs/containerd.deb']
    })
    expect(() => planEngine(bare({debs: [deb('curl')]}), inputs(raw), URL, [])).toThrow(
      'holds no docker-ce or docker.io package'
    )
  })

  it.each(['auto', 'true'])(
    'refuses to install beside a snap docker (install-docker: %s), before any change',
    installDocker => {
      const snap = bare({snap: true, client: true, serverVersion: '28.4.0'})
      expect(() => planEngine(snap, inputs({'install-docker': installDocker}), URL, [])).toThrow(
        /^Docker is installed as a snap \(\/snap\/bin\/docker\)\. .* Either remove the snap \(sudo snap remove docker\) and run again, or set install-docker: false/
      )
    }
  )

  it('uses a running snap docker as it is with install-docker: false, never starting or enabling units', () => {
    const snap = bare({snap: true, client: true, serverVersion: '28.4.0', dockerGroup: ['runner']})
    const plan = planEngine(snap, inputs({'install-docker': 'false'}), URL, ['runner'])
    expect(plan.actions).toEqual([])
    expect(plan.found).toBe('Docker from a snap, 28.4.0 running')
    expect(() =>
      planEngine({...snap, serverVersion: undefined}, inputs({'install-docker': 'false'}), URL, [])
    ).toThrow('Docker from the snap does not answer: start it (sudo snap start docker)')
  })

  it("puts back an admin's hold it lifted for an install", () => {
    const host = ready({
      held: new Set(['docker.io', 'runc']),
      candidates: new Map([['docker.io', '20.10.25']])
    })
    const plan = planEngine(
      host,
      inputs({'install-docker': 'true', 'docker-source': 'distro'}),
      URL,
      ['runner']
    )
    expect(plan.actions.map(a => a.kind)).toEqual([
      'apt-update',
      'unhold',
      'install',
      'hold',
      'start'
    ])
    expect(plan.actions.find(a => a.kind === 'hold')).toEqual({
      kind: 'hold',
      packages: ['docker.io']
    })
  })

  it.each([
    ['20.10.24+dfsg1', '20.10.24+dfsg1-1+deb12u1+b6', true],
    ['27.3.1', '5:27.3.1-1~ubuntu.24.04~noble', true],
    ['20.10.24+dfsg1', '5:20.10.24-1~debian.12~bookworm', true],
    ['26.1.5+dfsg1', '27.3.1-0ubuntu1~24.04.1', false],
    ['20.10.24+dfsg1', '5:20.10.23-1~debian.12~bookworm', false]
  ])('a daemon %s runs the package %s: %s', (server, pkg, same) => {
    expect(serverMatchesPackage(server, pkg)).toBe(same)
  })

  it('enables the unit on systemd hosts and manages the docker group', () => {
    expect(kinds(ready({manager: 'systemd', enabled: false}))).toEqual(['enable'])
    expect(kinds(ready({dockerGroup: undefined}), {}, [])).toEqual(['create-group'])
    expect(kinds(ready({dockerGroup: ['a']}), {}, ['a', 'b'])).toEqual(['add-users'])
  })
})

describe('engine helpers', () => {
  it('reads group members', () => {
    const etc = 'root:x:0:\ndocker:x:998:runner,ci\nusers:x:100:'
    expect(groupMembers(etc, 'docker')).toEqual(['runner', 'ci'])
    expect(groupMembers(etc, 'users')).toEqual([])
    expect(groupMembers(etc, 'nvidia')).toBeUndefined()
  })

  it('defaults docker-users to the runner user unless it is root', () => {
    expect(dockerUsers(inputs(), 'runner')).toEqual(['runner'])
    expect(dockerUsers(inputs(), 'root')).toEqual([])
    expect(dockerUsers(inputs({'docker-users': 'a,b'}), 'runner')).toEqual(['a', 'b'])
  })

  it('writes a signed-by source and finds stale duplicates', () => {
    expect(dockerSourceLine(URL, 'amd64', 'bookworm')).toBe(
      `deb [arch=amd64 signed-by=${DOCKER_KEYRING}] ${URL} bookworm stable\n`
    )
    const files = [
      {path: DOCKER_LIST, content: dockerSourceLine(URL, 'amd64', 'bookworm')},
      {
        path: '/etc/apt/sources.list.d/docker-ce.list',
        content: `deb [arch=amd64] ${URL} bookworm stable`
      },
      {
        path: '/etc/apt/sources.list.d/old.list',
        content: '# deb https://download.docker.com/linux/debian bookworm stable'
      },
      {
        path: '/etc/apt/sources.list.d/debian.sources',
        content: 'URIs: http://deb.debian.org/debian'
      }
    ]
    expect(staleDockerSources(files, URL)).toEqual([
      {path: '/etc/apt/sources.list.d/docker-ce.list', how: 'rename'}
    ])
  })

  it('disables only the Docker entries of files that hold other repositories too', () => {
    const docker =
      'deb [arch=amd64 signed-by=/usr/share/keyrings/docker.gpg] https://download.docker.com/linux/debian bookworm stable'
    const files = [
      {
        path: '/etc/apt/sources.list',
        content: `deb http://deb.debian.org/debian bookworm main\n${docker}\n`
      },
      {
        path: '/etc/apt/sources.list.d/mixed.list',
        content: `deb http://ppa.local/x bookworm main\n${docker}\n`
      },
      {
        path: '/etc/apt/sources.list.d/docker.sources',
        content:
          'Types: deb\nURIs: https://download.docker.com/linux/debian\nSuites: bookworm\nComponents: stable\nSigned-By: /etc/apt/keyrings/docker.asc\n'
      },
      {
        path: '/etc/apt/sources.list.d/many.sources',
        content:
          'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n\nTypes: deb\nURIs: https://download.docker.com/linux/debian\nSuites: bookworm\nComponents: stable\n'
      },
      {path: '/etc/apt/sources.list.d/only-docker-main.list', content: `# old\n${docker}\n`}
    ]
    expect(staleDockerSources(files, URL)).toEqual([
      {
        path: '/etc/apt/sources.list',
        how: 'rewrite',
        entries: 1,
        content: `deb http://deb.debian.org/debian bookworm main\n# disabled by docker-gpu-setup: ${docker}\n`
      },
      {
        path: '/etc/apt/sources.list.d/mixed.list',
        how: 'rewrite',
        entries: 1,
        content: `deb http://ppa.local/x bookworm main\n# disabled by docker-gpu-setup: ${docker}\n`
      },
      {path: '/etc/apt/sources.list.d/docker.sources', how: 'rename'},
      {
        path: '/etc/apt/sources.list.d/many.sources',
        how: 'rewrite',
        entries: 1,
        content:
          'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n\nTypes: deb\nURIs: https://download.docker.com/linux/debian\nSuites: bookworm\nComponents: stable\nEnabled: no\n'
      },
      {path: '/etc/apt/sources.list.d/only-docker-main.list', how: 'rename'}
    ])
  })
})
