/**
 * Defects of real runner hosts, each reproduced in a disposable host and kept as a regression
 * test: apt's locks at boot, needrestart, by-hand runs, package scripts that leave the old daemon
 * serving, WSL2's nvidia-smi, a snap docker, low ports as a non-root runner, and a registry
 * nobody asked for.
 */
import {readFileSync} from 'node:fs'
import * as path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from '@jest/globals'
import {Box, RUNNER_USER} from './bed/box.js'
import {BOOT_TIMEOUT} from './bed/prepare.js'
import {errorLine, expectSuccess, ran, waitFor} from './harness.js'

const NVIDIA_PORT = 58126
const DOCKER_PORT = 58127
const toolkit = {
  'docker-source': 'distro',
  'gpu-runtime': 'nvidia',
  'gpu-check': 'false',
  'nvidia-apt-url': `http://127.0.0.1:${NVIDIA_PORT}/stable/deb`,
  'nvidia-apt-key': `http://127.0.0.1:${NVIDIA_PORT}/gpgkey`,
  'nvidia-toolkit-version': '1.17.8-1'
}
const dockerRepo = {
  'install-docker': 'true',
  'docker-source': 'docker',
  'docker-apt-url': `http://127.0.0.1:${DOCKER_PORT}/linux/debian`,
  'docker-version': '20.10.24',
  'gpu-runtime': 'none'
}

let box: Box | undefined
afterEach(() => {
  box?.remove()
  box = undefined
})

/** A fresh bookworm host with Docker running and the stand-in NVIDIA repository served. */
function toolkitHost(): Box {
  const b = Box.start({suite: 'bookworm', state: 'engine'})
  b.serve('nvidia', NVIDIA_PORT, '/gpgkey')
  return b
}

describe.each([
  ['/var/lib/apt/lists/lock', 'apt-get update'],
  ['/var/cache/apt/archives/lock', 'apt-get install (downloads)'],
  ['/var/lib/dpkg/lock-frontend', 'apt-get install and apt-mark'],
  ['/var/lib/dpkg/lock', 'dpkg under apt-get and apt-mark']
])('%s, held the way apt holds it (fcntl), as at boot', (lock, by) => {
  it(`makes ${by} wait, naming the holder, then succeeds`, async () => {
    box = toolkitHost()
    const b = box
    // A POSIX record lock (apt's kind: flock(1) would take one apt never sees), held until the
    // run is seen waiting for it: the wait is certain, not a matter of timing.
    const holder = b
      .sh(
        `setsid python3 -c 'import fcntl, time; f = open("${lock}", "a+"); fcntl.lockf(f, fcntl.LOCK_EX); open("/tmp/held", "w").close(); time.sleep(600)' >/dev/null 2>&1 < /dev/null & echo $!; ` +
          'for i in $(seq 1 50); do [ -e /tmp/held ] && exit 0; sleep 0.1; done; exit 1'
      )
      .trim()
    const started = b.start(toolkit, {user: RUNNER_USER})
    const waiting = new RegExp(
      `Waiting for ${lock.replace(/\//g, '\\/')}, held by process ${holder} \\(python3\\)`
    )
    try {
      await waitFor(() => waiting.test(started.output()), 240_000, `the wait for ${lock}`)
      await new Promise(r => setTimeout(r, 3000))
      expect(started.running()).toBe(true)
    } finally {
      b.sh(`kill ${holder} || true`)
    }
    const run = await started.done
    expectSuccess(run)
    expect(b.sh("dpkg-query -W -f '${Version}' nvidia-container-toolkit")).toBe('1.17.8-1')
    // The pinned toolkit is held at its version.
    expect(b.sh('apt-mark showhold')).toContain('nvidia-container-toolkit\n')
  }, 300_000)
})

describe('needrestart', () => {
  it('an install by the action restarts no service, though one runs a replaced binary', () => {
    box = toolkitHost()
    box.sh(
      'DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends needrestart >/dev/null 2>&1'
    )
    box.write(
      '/etc/systemd/system/dgs-sleeper.service',
      '[Service]\nExecStart=/usr/local/bin/dgs-sleeper infinity\n'
    )
    box.sh(
      'cp /bin/sleep /usr/local/bin/dgs-sleeper && systemctl daemon-reload && systemctl start dgs-sleeper'
    )
    const pid = box.sh('systemctl show -p MainPID --value dgs-sleeper').trim()
    // Replace the running binary: now there is something needrestart would restart.
    box.sh('cp /bin/sleep /tmp/s && mv /tmp/s /usr/local/bin/dgs-sleeper')
    expect(box.sh('needrestart -b -r l')).toContain('NEEDRESTART-SVC: dgs-sleeper.service')
    const run = box.run(toolkit, {user: RUNNER_USER})
    expectSuccess(run)
    expect(ran(run, 'apt-get')).toBe(true)
    expect(box.sh('systemctl show -p MainPID --value dgs-sleeper').trim()).toBe(pid)
    expect(box.sh('needrestart -b -r l')).toContain('NEEDRESTART-SVC: dgs-sleeper.service')
  }, 300_000)
})

describe('a run by hand, without the runner', () => {
  it("adds Docker's (stand-in) repository with no RUNNER_TEMP, as `sudo node dist/index.js` has", () => {
    box = Box.start({suite: 'bookworm', state: 'engine'})
    box.serve('docker-repo', DOCKER_PORT, '/linux/debian/gpg')
    const run = box.run(dockerRepo, {env: {RUNNER_TEMP: ''}})
    expectSuccess(run)
    expect(box.sh("dpkg-query -W -f '${Version}' docker-ce")).toBe(
      '5:20.10.24-1~debian.12~bookworm'
    )
  }, 300_000)
})

describe('package scripts that may not restart services (policy-rc.d exit 101)', () => {
  it('after the engine changes, the old dockerd still serving is restarted through systemd', () => {
    box = Box.start({suite: 'bookworm', state: 'engine'})
    box.serve('docker-repo', DOCKER_PORT, '/linux/debian/gpg')
    box.write('/usr/sbin/policy-rc.d', '#!/bin/sh\nexit 101\n')
    box.sh('chmod 755 /usr/sbin/policy-rc.d')
    const before = box.dockerdPid()
    const run = box.run(dockerRepo)
    expectSuccess(run)
    expect(run.stdout).toMatch(
      /Restarting Docker: dockerd \(pid \d+\) still runs the binary the package change replaced/
    )
    const pid = box.dockerdPid()
    expect(pid).not.toBe(before)
    expect(box.sh(`readlink /proc/${pid}/exe`).trim()).toBe('/usr/sbin/dockerd')
    expect(box.sh('systemctl show -p MainPID --value docker.service').trim()).toBe(String(pid))
    expect(run.outputs['docker-changed']).toBe('true')
  }, 300_000)
})

describe('WSL2', () => {
  it('finds nvidia-smi in /usr/lib/wsl/lib (a stand-in there) and configures the runtime on auto', () => {
    box = toolkitHost()
    const sample = readFileSync(
      path.resolve(
        import.meta.dirname,
        '..',
        '..',
        '__fixtures__',
        'nvidia-smi',
        '450.57-titan-xp.txt'
      ),
      'utf8'
    )
    box.write('/usr/lib/wsl/lib/nvidia-smi.txt', sample)
    box.write(
      '/usr/lib/wsl/lib/nvidia-smi',
      "#!/bin/sh\n# STAND-IN for WSL2's nvidia-smi (e2e tests only): a real output, replayed.\ncat /usr/lib/wsl/lib/nvidia-smi.txt\n"
    )
    box.sh('chmod 755 /usr/lib/wsl/lib/nvidia-smi && ! command -v nvidia-smi')
    // The replayed table answers every question, -q -x too, so the health gate (proven with a
    // stand-in that prints real XML in gpu-health.e2e) would find no GPU in it: off here.
    const run = box.run({...toolkit, 'gpu-runtime': 'auto', 'gpu-health': 'off'})
    expectSuccess(run)
    expect(run.outputs['nvidia-runtime']).toBe('true')
    expect(run.outputs['gpu-count']).toBe('1')
    expect(run.outputs['driver-version']).toBe('450.57')
  }, 300_000)
})

describe('a snap docker', () => {
  it('is never joined by a second engine: the step fails before any change, saying what to do', () => {
    box = Box.start({suite: 'bookworm', state: 'base'})
    box.write(
      '/snap/bin/docker',
      '#!/bin/sh\n# STAND-IN for a snap-installed docker (e2e tests only)\nexit 1\n'
    )
    box.sh('chmod 755 /snap/bin/docker')
    const before = box.dpkgState()
    const run = box.run({'docker-source': 'distro'}, {user: RUNNER_USER})
    expect(run.code).toBe(1)
    expect(errorLine(run)).toMatch(
      /^Docker is installed as a snap \(\/snap\/bin\/docker\)\. .*remove the snap \(sudo snap remove docker\).*install-docker: false/
    )
    expect(box.dpkgState()).toBe(before)
    expect(ran(run, 'apt-get')).toBe(false)
  }, 120_000)
})

describe('a port below 1024 as a non-root runner (unprivileged ports start at 1024)', () => {
  it('a free port 80 is free; one held by a process is named', () => {
    box = Box.start({
      suite: 'bookworm',
      state: 'engine',
      images: true,
      extra: ['--sysctl', 'net.ipv4.ip_unprivileged_port_start=1024']
    })
    const inputs = {'docker-source': 'distro', 'gpu-runtime': 'none', registry: 'localhost:80'}
    const run = box.run(inputs, {user: RUNNER_USER})
    expectSuccess(run)
    expect(run.outputs['registry-started']).toBe('true')
    expect(box.sh('curl -s -o /dev/null -w "%{http_code}" http://127.0.0.1:80/v2/')).toBe('200')
    box.sh('docker rm -f docker-gpu-setup-registry >/dev/null')
    box.sh(
      '(setsid python3 -m http.server --bind 127.0.0.1 80 >/dev/null 2>&1 &); ' +
        'for i in $(seq 1 50); do curl -s -o /dev/null http://127.0.0.1:80/ && exit 0; sleep 0.1; done; exit 1'
    )
    const taken = box.run(inputs, {user: RUNNER_USER})
    expect(taken.code).toBe(1)
    expect(errorLine(taken)).toMatch(/^Port 80 is taken by process "python3",pid=\d+,fd=\d+/)
  }, 180_000)
})

describe('a GPU-only setup with the defaults', () => {
  let host: Box
  beforeAll(() => {
    host = Box.start({suite: 'bookworm', state: 'engine'})
  }, BOOT_TIMEOUT)
  afterAll(() => host?.remove())

  it('runs no registry, pulls nothing, leaves port 5000 free, and still says where images would go', () => {
    const run = host.run({'docker-source': 'distro', 'gpu-runtime': 'none'}, {user: RUNNER_USER})
    expectSuccess(run)
    expect(run.outputs.registry).toBe('localhost:5000')
    expect(run.outputs['registry-started']).toBe('false')
    expect(run.commands.some(c => c.includes('pull') || c.includes('load'))).toBe(false)
    expect(host.sh('docker ps -aq | wc -l').trim()).toBe('0')
    expect(host.sh('docker images -q | wc -l').trim()).toBe('0')
    expect(run.stdout).toContain('not started: nothing asks for one')
  }, 120_000)
})
