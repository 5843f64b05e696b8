/**
 * The engine phase on this real host, in order: a bare host, offline and distribution installs,
 * reruns, a stopped daemon, and Docker's repository (served on 127.0.0.1 with STAND-IN packages
 * built by fixtures/build-apt-repo.sh, since Docker's own repository cannot be reached here).
 * The local registry is off (start-registry: false): registry.e2e.test.ts covers it.
 */
import {type ChildProcess} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync} from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {
  ROOT,
  RUNNER_USER,
  buildBusyboxImage,
  dockerdPid,
  dpkgState,
  ensureRunnerUser,
  errorLine,
  explain,
  ran,
  requireE2EHost,
  runAction,
  sh,
  stopDocker,
  serveDirectory
} from './harness.js'

const ENGINE_PACKAGES = [
  'docker.io',
  'docker-ce',
  'docker-ce-cli',
  'containerd.io',
  'docker-buildx-plugin',
  'docker-compose-plugin',
  'containerd',
  'runc',
  'tini'
]
const PORT = 58123
const REPO_URL = `http://127.0.0.1:${PORT}/linux/debian`
const STALE_LIST = '/etc/apt/sources.list.d/docker-old.list'

const work = mkdtempSync(path.join(os.tmpdir(), 'dgs-e2e-engine-'))
const offlineFull = path.join(work, 'offline-full')
const offlinePartial = path.join(work, 'offline-partial')
let server: ChildProcess | undefined

/** Installed versions of the engine's packages (absent: not installed). */
function enginePackages(): Record<string, string> {
  const out = sh(
    `dpkg-query -W -f '\${Package} \${Version} \${db:Status-Abbrev}\\n' ${ENGINE_PACKAGES.join(' ')} 2>/dev/null || true`
  )
  const found: Record<string, string> = {}
  for (const line of out.split('\n')) {
    const [name, version, status] = line.split(' ')
    if (status?.startsWith('ii') || status?.startsWith('hi')) found[name] = version
  }
  return found
}

/** A host with no engine: the test itself purges (the action never does). */
function makeBare(): void {
  stopDocker()
  sh(`apt-mark unhold ${ENGINE_PACKAGES.join(' ')} >/dev/null 2>&1 || true`)
  const installed = Object.keys(enginePackages())
  if (installed.length > 0) {
    sh(`DEBIAN_FRONTEND=noninteractive apt-get purge -y -q ${installed.join(' ')} >/dev/null`)
  }
  sh(
    'rm -f /etc/apt/sources.list.d/docker.list /etc/apt/keyrings/docker.asc /run/docker-gpu-setup/dockerd.pid'
  )
  sh(`gpasswd -d ${RUNNER_USER} docker >/dev/null 2>&1 || true`)
  if (existsSync('/usr/sbin/dockerd') || existsSync('/usr/bin/dockerd')) {
    throw new Error('dockerd is still installed after the purge')
  }
}

beforeAll(() => {
  requireE2EHost()
  ensureRunnerUser()
  makeBare()
  // What an operator copies to an air-gapped host: the engine and everything it needs here.
  sh(`mkdir -p ${offlineFull} ${offlinePartial}`)
  const needed = sh("apt-get install -s -q docker.io | awk '/^Inst / {print $2}'")
    .trim()
    .split('\n')
    .filter(Boolean)
  if (!needed.includes('docker.io'))
    throw new Error(`apt would not install docker.io: ${needed.join(' ')}`)
  sh(`cd ${offlineFull} && apt-get download -q ${needed.join(' ')} >/dev/null 2>&1`)
  sh(`cp ${offlineFull}/docker.io_*.deb ${offlinePartial}/`)
  // Docker's repository, with stand-in packages, signed with a key made for the test.
  sh(`bash ${ROOT}/__tests__/e2e/fixtures/build-apt-repo.sh ${work}/repo bookworm >/dev/null 2>&1`)
  server = serveDirectory(`${work}/repo`, PORT, '/linux/debian/gpg')
}, 300_000)

afterAll(() => {
  server?.kill()
  stopDocker()
  sh(`apt-mark unhold ${ENGINE_PACKAGES.join(' ')} >/dev/null 2>&1 || true`, {allowFail: true})
  sh(
    `rm -f /etc/apt/sources.list.d/docker.list /etc/apt/keyrings/docker.asc ${STALE_LIST} ${STALE_LIST}.disabled-by-docker-gpu-setup`,
    {allowFail: true}
  )
  // Leave the host as CI finds it: Debian's engine installed, not running, no stand-ins.
  sh(
    'DEBIAN_FRONTEND=noninteractive apt-get remove -y -q docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin >/dev/null 2>&1 || true; ' +
      'DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io >/dev/null',
    {allowFail: true}
  )
  rmSync(work, {recursive: true, force: true})
}, 300_000)

describe('a bare host', () => {
  it('install-docker: false fails clearly and changes nothing', () => {
    const before = dpkgState()
    const run = runAction({
      'install-docker': 'false',
      'docker-source': 'distro',
      'start-registry': 'false'
    })
    expect(run.code).toBe(1)
    expect(errorLine(run)).toBe(
      'Docker Engine is not installed (no dockerd) and install-docker is false: set install-docker to auto or true, or install Docker first.'
    )
    expect(dpkgState()).toBe(before)
  })

  it('a dry run says it would install and changes nothing', () => {
    const before = dpkgState()
    const run = runAction({'dry-run': 'true', 'docker-source': 'distro', 'start-registry': 'false'})
    expect(run.code).toBe(0)
    expect(run.stdout).toContain('Found: no Docker Engine (dockerd missing)')
    expect(run.stdout).toContain('  - install docker.io')
    expect(run.summary).toContain('📝 would change')
    expect(dpkgState()).toBe(before)
    expect(dockerdPid()).toBeUndefined()
  })

  it('offline: a folder missing dependencies is refused by name before anything is installed', () => {
    const before = dpkgState()
    const run = runAction({
      'docker-source': 'offline',
      'start-registry': 'false',
      'offline-debs': offlinePartial
    })
    expect(run.code).toBe(1)
    expect(errorLine(run)).toMatch(
      new RegExp(
        `^offline-debs \\(${offlinePartial}\\) lacks dependencies that are not installed either: .*containerd.*runc`
      )
    )
    expect(dpkgState()).toBe(before)
  })

  it('offline: installs only from the folder, with no network at all (unshare -n)', () => {
    const run = runAction(
      {
        'docker-source': 'offline',
        'start-registry': 'false',
        'offline-debs': offlineFull,
        'docker-users': RUNNER_USER
      },
      {wrap: ['unshare', '-n', '--']}
    )
    expect(run.code).toBe(0)
    expect(ran(run, 'apt-get')).toBe(true)
    expect(run.commands.some(c => c.includes('update'))).toBe(false)
    expect(run.stdout).not.toMatch(/^(Get|Err):\d+ http/m)
    expect(enginePackages()['docker.io']).toBeDefined()
    expect(run.outputs['docker-changed']).toBe('true')
    expect(run.outputs['docker-version']).toMatch(/^20\.10\./)
    // The daemon it started lives in that network namespace: stop it and start over without one.
    stopDocker()
    makeBare()
  }, 300_000)
})

describe("Debian's docker.io, as a non-root runner with passwordless sudo, then reruns", () => {
  let pid: number | undefined

  it('installs, starts, and adds the runner user to the docker group', () => {
    const run = runAction(
      {'docker-source': 'distro', 'start-registry': 'false'},
      {user: RUNNER_USER}
    )
    expect(run.code).toBe(0)
    expect(run.outputs['docker-changed']).toBe('true')
    expect(run.outputs['docker-version']).toMatch(/^20\.10\./)
    expect(run.commands.every(c => !c.includes('apt-get') || c[0] === 'sudo')).toBe(true)
    expect(sh(`id -nG ${RUNNER_USER}`)).toMatch(/\bdocker\b/)
    expect(run.stdout).toContain('restart the runner service')
    expect(run.summary).toContain('🔧 changed')
    pid = dockerdPid()
    expect(pid).toBeDefined()
    // A container really runs (an image built here: nothing is pulled).
    buildBusyboxImage('dgs-e2e/busybox:engine')
    expect(sh('docker run --rm dgs-e2e/busybox:engine').trim()).toBe('dgs-e2e/busybox:engine')
    // The runner's tracking id must not reach the daemon, or the runner kills it after the job.
    expect(sh(`tr '\\0' '\\n' < /proc/${pid}/environ`)).not.toContain('RUNNER_TRACKING_ID')
  }, 300_000)

  it.each([
    ['root', undefined],
    ['the runner user', RUNNER_USER]
  ])('a rerun as %s calls no apt, restarts nothing and reports no change', (_who, user) => {
    const run = runAction({'docker-source': 'distro', 'start-registry': 'false'}, {user})
    expect(run.code).toBe(0)
    expect(ran(run, 'apt-get') || ran(run, 'usermod') || ran(run, 'dpkg')).toBe(false)
    expect(dockerdPid()).toBe(pid)
    expect(run.outputs['docker-changed']).toBe('false')
    expect(run.summary).toContain('host already right: nothing changed')
  })

  it.each([
    ['root', undefined],
    ['the runner user', RUNNER_USER]
  ])(
    'a stopped daemon is started (as %s), nothing else',
    (_who, user) => {
      stopDocker()
      const run = runAction({'docker-source': 'distro', 'start-registry': 'false'}, {user})
      expect(run.code).toBe(0)
      expect(ran(run, 'apt-get')).toBe(false)
      expect(run.stdout).toContain('  - start Docker')
      expect(run.outputs['docker-changed']).toBe('false')
      expect(dockerdPid()).toBeDefined()
      expect(dockerdPid()).not.toBe(pid)
      expect(sh('docker run --rm dgs-e2e/busybox:engine').trim()).toBe('dgs-e2e/busybox:engine')
      pid = dockerdPid()
    },
    120_000
  )
})

describe("Docker's repository (stand-in packages on 127.0.0.1)", () => {
  const inputs = {
    'install-docker': 'true',
    'docker-source': 'docker',
    'start-registry': 'false',
    'docker-apt-url': REPO_URL
  }

  it('a pin that does not exist fails with the versions that do, before anything is removed or stopped', () => {
    writeFileSync(STALE_LIST, `deb ${REPO_URL} bookworm stable\n`)
    const pid = dockerdPid()
    const before = enginePackages()
    const run = runAction({...inputs, 'docker-version': '99.0.1'})
    expect(run.code).toBe(1)
    expect(errorLine(run)).toBe(
      'docker-version 99.0.1 is not available for docker-ce. Available: 5:20.10.24-1~debian.12~bookworm, 5:20.10.23-1~debian.12~bookworm'
    )
    expect(enginePackages()).toEqual(before)
    expect(dockerdPid()).toBe(pid)
  }, 120_000)

  it('switches from docker.io: key, signed-by source, conflicts removed (not purged), pinned and held', () => {
    const run = runAction({...inputs, 'docker-version': '20.10.24'})
    expect(run.code).toBe(0)
    const pkgs = enginePackages()
    expect(pkgs['docker-ce']).toBe('5:20.10.24-1~debian.12~bookworm')
    expect(pkgs['docker-ce-cli']).toBe('5:20.10.24-1~debian.12~bookworm')
    expect(pkgs['containerd.io']).toBe('1.6.20-1')
    expect(pkgs['docker.io']).toBeUndefined()
    expect(pkgs.containerd).toBeUndefined()
    // Removed, not purged: docker.io's conffiles and the images in /var/lib/docker are still there.
    expect(sh("dpkg-query -W -f '${db:Status-Abbrev}' docker.io")).toMatch(/^rc/)
    expect(sh('apt-mark showhold').split('\n')).toEqual(
      expect.arrayContaining(['docker-ce', 'docker-ce-cli'])
    )
    expect(readFileSync('/etc/apt/keyrings/docker.asc', 'utf8')).toBe(
      readFileSync(`${work}/repo/linux/debian/gpg`, 'utf8')
    )
    expect(readFileSync('/etc/apt/sources.list.d/docker.list', 'utf8')).toBe(
      `deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] ${REPO_URL} bookworm stable\n`
    )
    expect(existsSync(STALE_LIST)).toBe(false)
    expect(existsSync(`${STALE_LIST}.disabled-by-docker-gpu-setup`)).toBe(true)
    // The dockerd this action had started was stopped before its package went away.
    expect(ran(run, 'kill')).toBe(true)
    expect(run.outputs['docker-changed']).toBe('true')
    expect(run.outputs['docker-version']).toBe('20.10.24+dfsg1')
    expect(sh('docker run --rm dgs-e2e/busybox:engine').trim()).toBe('dgs-e2e/busybox:engine')
  }, 300_000)

  it('a rerun with the same pin changes nothing', () => {
    const pid = dockerdPid()
    const run = runAction({...inputs, 'docker-version': '20.10.24'})
    expect(run.code).toBe(0)
    expect(ran(run, 'apt-get')).toBe(false)
    expect(dockerdPid()).toBe(pid)
    expect(run.outputs['docker-changed']).toBe('false')
    expect(explain(run)).toContain('Nothing to change.')
  })
})
