/**
 * The engine phase on disposable bookworm hosts with systemd (Docker 20.10): a bare host, an
 * air-gapped install with no network and an empty apt cache, Debian's docker.io as a sudo user,
 * reruns, a stopped daemon, and Docker's repository (served in the box on 127.0.0.1 with STAND-IN
 * packages, fixtures/build-apt-repo.sh: Docker's own repository cannot be reached here).
 * The same on a host with no init, where the action starts dockerd itself.
 * The local registry is off (start-registry: false): registry.e2e.test.ts covers it.
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {Box, IN_BOX, RUNNER_USER} from './bed/box.js'
import {BOOT_TIMEOUT} from './bed/prepare.js'
import {errorLine, explain, expectSuccess, ran} from './harness.js'

const ENGINE_PACKAGES = [
  'docker.io',
  'docker-ce',
  'docker-ce-cli',
  'containerd.io',
  'docker-buildx-plugin',
  'docker-compose-plugin',
  'containerd',
  'runc'
]
const PORT = 58123
const REPO_URL = `http://127.0.0.1:${PORT}/linux/debian`
const OFFLINE = `${IN_BOX.fixtures}/offline-bookworm`
const STALE_LIST = '/etc/apt/sources.list.d/docker-old.list'
const MIXED_LIST = '/etc/apt/sources.list.d/mixed.list'
const noRegistry = {'start-registry': 'false', 'gpu-runtime': 'none'}
const SHIM = 'dgs-e2e-docker-shim'
const SHIM_REMOVED = `Installing the engine also removes ${SHIM} (apt: they depend on or conflict with the new packages). Removed, not purged: their configuration stays.`

/** Installed versions of the engine's packages in a box (absent: not installed). */
function enginePackages(box: Box): Record<string, string> {
  const out = box.sh(
    `dpkg-query -W -f '\${Package} \${Version} \${db:Status-Abbrev}\\n' ${ENGINE_PACKAGES.join(' ')} 2>/dev/null || true`
  )
  const found: Record<string, string> = {}
  for (const line of out.split('\n')) {
    const [name, version, status] = line.split(' ')
    if (status?.startsWith('ii') || status?.startsWith('hi')) found[name] = version
  }
  return found
}

/** A container runs in the box (an image loaded there: nothing is pulled). */
function runsContainer(box: Box, runtime = ''): string {
  return box.sh(`docker run --rm ${runtime} dgs-e2e/busybox:latest`).trim()
}

describe('an air-gapped host: no network, an empty apt cache', () => {
  let box: Box
  beforeAll(() => {
    box = Box.start({suite: 'bookworm', state: 'base', network: 'none'})
  }, BOOT_TIMEOUT)
  afterAll(() => box?.remove())

  it('the box really has no network and no cached package', () => {
    expect(box.sh("find /var/cache/apt/archives -name '*.deb' | wc -l").trim()).toBe('0')
    expect(box.sh('ip -o link show | grep -vc "lo:" || true').trim()).toBe('0')
  })

  it('a folder missing dependencies is refused by name before anything is installed', () => {
    const before = box.dpkgState()
    const run = box.run({
      ...noRegistry,
      'docker-source': 'offline',
      'offline-debs': `${OFFLINE}/partial`
    })
    expect(run.code).toBe(1)
    expect(errorLine(run)).toMatch(
      new RegExp(
        `^offline-debs \\(${OFFLINE}/partial\\) lacks dependencies that are not installed either: .*containerd.*runc`
      )
    )
    expect(box.dpkgState()).toBe(before)
  })

  it('installs only from the folder, as a sudo user; systemd runs the engine', () => {
    const run = box.run(
      {...noRegistry, 'docker-source': 'offline', 'offline-debs': `${OFFLINE}/full`},
      {user: RUNNER_USER}
    )
    expectSuccess(run)
    expect(run.commands.some(c => c.includes('update'))).toBe(false)
    expect(run.stdout).not.toMatch(/^(Get|Err):\d+ http/m)
    expect(enginePackages(box)['docker.io']).toBeDefined()
    expect(run.outputs['docker-changed']).toBe('true')
    expect(run.outputs['docker-version']).toMatch(/^20\.10\./)
    expect(box.sh('systemctl is-active docker.service').trim()).toBe('active')
    expect(box.sh('systemctl is-enabled docker.service').trim()).toBe('enabled')
    expect(box.sh(`id -nG ${RUNNER_USER}`)).toMatch(/\bdocker\b/)
  }, 300_000)
})

describe('a bare host with systemd', () => {
  let box: Box
  let pid: number | undefined
  beforeAll(() => {
    box = Box.start({suite: 'bookworm', state: 'base'})
  }, BOOT_TIMEOUT)
  afterAll(() => box?.remove())

  it('install-docker: false fails clearly and changes nothing', () => {
    const before = box.dpkgState()
    const run = box.run({...noRegistry, 'install-docker': 'false', 'docker-source': 'distro'})
    expect(run.code).toBe(1)
    expect(errorLine(run)).toBe(
      'Docker Engine is not installed (no dockerd) and install-docker is false: set install-docker to auto or true, or install Docker first.'
    )
    expect(box.dpkgState()).toBe(before)
  })

  it('a dry run says it would install, with what apt would remove too, and changes nothing', () => {
    // A stand-in package that conflicts with docker.io: apt removes it to install the engine,
    // though the plan does not name it.
    box.sh(
      `mkdir -p /tmp/shim/DEBIAN && printf '%s\\n' 'Package: ${SHIM}' 'Version: 1' 'Architecture: all' ` +
        `'Maintainer: e2e <e2e@localhost>' 'Conflicts: docker.io' 'Description: stand-in' > /tmp/shim/DEBIAN/control && ` +
        `dpkg-deb -b /tmp/shim /tmp/shim.deb >/dev/null && dpkg -i /tmp/shim.deb >/dev/null`
    )
    const before = box.dpkgState()
    const run = box.run({...noRegistry, 'dry-run': 'true', 'docker-source': 'distro'})
    expect(run.code).toBe(0)
    expect(run.stdout).toContain('Found: no Docker Engine (dockerd missing)')
    expect(run.stdout).toContain('  - install docker.io')
    expect(run.stdout).toContain(`  - ${SHIM_REMOVED}`)
    expect(run.summary).toContain('would change')
    expect(run.summary).toContain(SHIM_REMOVED)
    expect(box.dpkgState()).toBe(before)
    expect(box.dockerdPid()).toBeUndefined()
  })

  it("installs Debian's docker.io as a sudo user: systemctl starts and enables it, no detached dockerd", () => {
    const run = box.run({...noRegistry, 'docker-source': 'distro'}, {user: RUNNER_USER})
    expectSuccess(run)
    expect(run.outputs['docker-changed']).toBe('true')
    expect(run.outputs['docker-version']).toMatch(/^20\.10\./)
    // Named before apt ran, and removed, not purged.
    expect(run.stdout).toContain(`::warning::${SHIM_REMOVED}`)
    expect(box.sh(`dpkg-query -W -f '\${db:Status-Abbrev}' ${SHIM} || true`)).not.toMatch(/^ii/)
    // apt changes the host only through sudo (its simulations need no root).
    expect(
      run.commands.every(c => !c.includes('apt-get') || c[0] === 'sudo' || c.includes('-s'))
    ).toBe(true)
    expect(box.sh(`id -nG ${RUNNER_USER}`)).toMatch(/\bdocker\b/)
    expect(run.stdout).toContain('restart the runner service')
    expect(box.sh('systemctl is-active docker.service').trim()).toBe('active')
    expect(box.sh('systemctl is-enabled docker.service').trim()).toBe('enabled')
    // systemd runs the daemon: it sits in docker.service's cgroup, and no log of a detached one exists.
    pid = box.dockerdPid()
    expect(box.sh(`systemctl show -p MainPID --value docker.service`).trim()).toBe(String(pid))
    expect(box.exists('/run/docker-gpu-setup/dockerd.pid')).toBe(false)
    expect(run.commands.some(c => c[0] === 'sh' || c.includes('spawn'))).toBe(false)
    box.loadImages()
    expect(runsContainer(box)).toBe('busybox')
  }, 300_000)

  it.each([
    ['root', undefined],
    ['the runner user', RUNNER_USER]
  ])('a rerun as %s calls no apt, restarts nothing and reports no change', (_who, user) => {
    const run = box.run({...noRegistry, 'docker-source': 'distro'}, {user})
    expectSuccess(run)
    expect(ran(run, 'apt-get') || ran(run, 'usermod') || ran(run, 'dpkg')).toBe(false)
    expect(box.dockerdPid()).toBe(pid)
    expect(run.outputs['docker-changed']).toBe('false')
    expect(run.summary).toContain('host already right: nothing changed')
  })

  it('a stopped daemon (service and socket) is started through systemctl, nothing else', () => {
    box.sh('systemctl stop docker.socket docker.service')
    expect(box.dockerdPid()).toBeUndefined()
    const run = box.run({...noRegistry, 'docker-source': 'distro'}, {user: RUNNER_USER})
    expectSuccess(run)
    expect(ran(run, 'apt-get')).toBe(false)
    expect(run.stdout).toContain('  - start Docker')
    expect(run.outputs['docker-changed']).toBe('false')
    expect(box.sh('systemctl is-active docker.service').trim()).toBe('active')
    expect(runsContainer(box)).toBe('busybox')
  }, 120_000)

  describe("then Docker's repository (stand-in packages on the box's 127.0.0.1)", () => {
    const inputs = {
      ...noRegistry,
      'install-docker': 'true',
      'docker-source': 'docker',
      'docker-apt-url': REPO_URL
    }
    beforeAll(() => box.serve('docker-repo', PORT, '/linux/debian/gpg'))

    it('a pin that does not exist fails with the versions that do, before anything is removed or stopped', () => {
      box.write(STALE_LIST, `deb ${REPO_URL} bookworm stable\n`)
      // Docker's line in sources.list itself, and in a file that holds another repository too,
      // each with another signed-by: apt-get update fails on them unless they are disabled.
      box.sh(
        `echo 'deb [signed-by=/usr/share/keyrings/old-docker.gpg] ${REPO_URL} bookworm stable' >> /etc/apt/sources.list; ` +
          `printf '%s\\n' 'deb http://deb.debian.org/debian bookworm contrib' 'deb [signed-by=/usr/share/keyrings/old-docker.gpg] ${REPO_URL} bookworm stable' > ${MIXED_LIST}`
      )
      const dockerd = box.dockerdPid()
      const before = enginePackages(box)
      const run = box.run({...inputs, 'docker-version': '99.0.1'})
      expect(run.code).toBe(1)
      expect(errorLine(run)).toBe(
        'docker-version 99.0.1 is not available for docker-ce. Available: 5:20.10.24-1~debian.12~bookworm, 5:20.10.23-1~debian.12~bookworm'
      )
      expect(enginePackages(box)).toEqual(before)
      expect(box.dockerdPid()).toBe(dockerd)
    }, 120_000)

    it('switches from docker.io: key, signed-by source, conflicts removed (not purged), pinned and held', () => {
      const run = box.run({...inputs, 'docker-version': '20.10.24'})
      expectSuccess(run)
      const pkgs = enginePackages(box)
      expect(pkgs['docker-ce']).toBe('5:20.10.24-1~debian.12~bookworm')
      expect(pkgs['docker-ce-cli']).toBe('5:20.10.24-1~debian.12~bookworm')
      expect(pkgs['containerd.io']).toBe('1.6.20-1')
      expect(pkgs['docker.io']).toBeUndefined()
      expect(pkgs.containerd).toBeUndefined()
      // Removed, not purged: docker.io's conffiles and the images in /var/lib/docker are still there.
      expect(box.sh("dpkg-query -W -f '${db:Status-Abbrev}' docker.io")).toMatch(/^rc/)
      expect(box.sh('apt-mark showhold').split('\n')).toEqual(
        expect.arrayContaining(['docker-ce', 'docker-ce-cli'])
      )
      expect(box.read('/etc/apt/keyrings/docker.asc')).toBe(
        box.read(`${IN_BOX.fixtures}/docker-repo/linux/debian/gpg`)
      )
      expect(box.read('/etc/apt/sources.list.d/docker.list')).toBe(
        `deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] ${REPO_URL} bookworm stable\n`
      )
      expect(box.exists(STALE_LIST)).toBe(false)
      expect(box.exists(`${STALE_LIST}.disabled-by-docker-gpu-setup`)).toBe(true)
      // Only Docker's entries are disabled where other repositories live; the files are kept as they were.
      expect(box.read('/etc/apt/sources.list')).toContain(
        `# disabled by docker-gpu-setup: deb [signed-by=/usr/share/keyrings/old-docker.gpg] ${REPO_URL}`
      )
      expect(box.read('/etc/apt/sources.list')).toMatch(
        /^deb http:\/\/deb.debian.org\/debian bookworm main$/m
      )
      expect(box.read('/etc/apt/sources.list.before-docker-gpu-setup')).toContain(
        `\ndeb [signed-by=/usr/share/keyrings/old-docker.gpg] ${REPO_URL}`
      )
      expect(box.read(MIXED_LIST)).toBe(
        `deb http://deb.debian.org/debian bookworm contrib\n# disabled by docker-gpu-setup: deb [signed-by=/usr/share/keyrings/old-docker.gpg] ${REPO_URL} bookworm stable\n`
      )
      // Docker's own install runs with what docker-ce recommends (the stand-in: pigz and git).
      expect(run.stdout).toContain('docker-ce recommends pigz, git; installing pigz, git')
      expect(box.sh("dpkg-query -W -f '${db:Status-Abbrev} ' pigz git")).toBe('ii  ii  ')
      expect(run.outputs['docker-changed']).toBe('true')
      expect(run.outputs['docker-version']).toBe('20.10.24+dfsg1')
      expect(box.sh('systemctl is-active docker.service').trim()).toBe('active')
      expect(runsContainer(box)).toBe('busybox')
    }, 300_000)

    it('a rerun with the same pin changes nothing', () => {
      const dockerd = box.dockerdPid()
      const run = box.run({...inputs, 'docker-version': '20.10.24'})
      expectSuccess(run)
      expect(ran(run, 'apt-get')).toBe(false)
      expect(box.dockerdPid()).toBe(dockerd)
      expect(run.outputs['docker-changed']).toBe('false')
      expect(explain(run)).toContain('Nothing to change.')
    })
  })
})

describe('a host with no init: the action runs dockerd itself', () => {
  let box: Box
  let pid: number | undefined
  beforeAll(() => {
    box = Box.start({suite: 'bookworm', state: 'engine', init: 'none'})
  }, BOOT_TIMEOUT)
  afterAll(() => box?.remove())

  it('starts a detached dockerd that does not carry the runner tracking id', () => {
    expect(box.dockerdPid()).toBeUndefined()
    const run = box.run({...noRegistry, 'docker-source': 'distro'}, {user: RUNNER_USER})
    expectSuccess(run)
    expect(run.stdout).toContain('  - start Docker')
    pid = box.dockerdPid()
    expect(pid).toBeDefined()
    // The runner kills what carries its tracking id when the job ends.
    expect(box.sh(`tr '\\0' '\\n' < /proc/${pid}/environ`)).not.toContain('RUNNER_TRACKING_ID')
    box.loadImages()
    expect(runsContainer(box)).toBe('busybox')
  }, 120_000)

  it('a rerun keeps the same dockerd', () => {
    const run = box.run({...noRegistry, 'docker-source': 'distro'})
    expectSuccess(run)
    expect(box.dockerdPid()).toBe(pid)
    expect(run.outputs['docker-changed']).toBe('false')
  })

  it("switching to Docker's repository stops the dockerd it started before the packages change", () => {
    box.serve('docker-repo', PORT, '/linux/debian/gpg')
    const run = box.run({
      ...noRegistry,
      'install-docker': 'true',
      'docker-source': 'docker',
      'docker-apt-url': REPO_URL
    })
    expectSuccess(run)
    expect(ran(run, 'kill')).toBe(true)
    expect(enginePackages(box)['docker-ce']).toBe('5:20.10.24-1~debian.12~bookworm')
    expect(box.dockerdPid()).not.toBe(pid)
    expect(runsContainer(box)).toBe('busybox')
  }, 300_000)
})
