/**
 * What systemd hosts do to a service the action drives, proven in disposable systemd hosts:
 * socket activation beside a restart, a unit that hit its start limit, a start that never
 * finishes, and Debian 13's engine without its client.
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {Box} from './bed/box.js'
import {BOOT_TIMEOUT} from './bed/prepare.js'
import {errorLine, expectSuccess, ran} from './harness.js'

const plain = {'docker-source': 'distro', 'start-registry': 'false', 'gpu-runtime': 'none'}
const DROP_IN = '/etc/systemd/system/docker.service.d/dgs-e2e.conf'

describe('Docker under systemd (bookworm)', () => {
  let box: Box
  beforeAll(() => {
    box = Box.start({suite: 'bookworm', state: 'engine'})
  }, BOOT_TIMEOUT)
  afterAll(() => box?.remove())

  it('a daemon.json change restarts docker.service while docker.socket is active', () => {
    expect(box.sh('systemctl is-active docker.socket docker.service')).toBe('active\nactive\n')
    const before = box.dockerdPid()
    // log-opts: a key only a start reads (a reload would not restart anything).
    const run = box.run({...plain, 'daemon-config': '{"log-opts": {"max-size": "5m"}}'})
    expectSuccess(run)
    expect(run.outputs['daemon-config-changed']).toBe('true')
    expect(run.outputs['daemon-change']).toBe('restart')
    expect(box.dockerdPid()).not.toBe(before)
    expect(box.sh('systemctl show -p MainPID --value docker.service').trim()).toBe(
      String(box.dockerdPid())
    )
    expect(box.sh('systemctl is-active docker.socket docker.service')).toBe('active\nactive\n')
    expect(box.sh("docker info --format '{{.ServerVersion}}'").trim()).toMatch(/^20\.10\./)
  }, 180_000)

  it('a unit that hit its start limit is reset and started', () => {
    // Provoke it: a config dockerd refuses, restarted until systemd gives up on the unit.
    const good = box.read('/etc/docker/daemon.json') ?? '{}\n'
    box.write('/etc/docker/daemon.json', '{"no-such-option": true}\n')
    // systemd 252 keeps Result=exit-code; its journal and the failed socket say what happened.
    box.sh(
      'for i in $(seq 1 10); do systemctl restart docker.service >/dev/null 2>&1 || true; ' +
        'journalctl -u docker.service --no-pager | grep -q "Start request repeated too quickly" && exit 0; sleep 0.5; done; exit 1'
    )
    box.write('/etc/docker/daemon.json', good)
    // The unit now refuses a plain start even with a good config: that is what the action meets.
    expect(
      box
        .sh('systemctl start docker.service >/dev/null 2>&1 && echo started || echo refused')
        .trim()
    ).toBe('refused')
    const run = box.run(plain)
    expectSuccess(run)
    expect(run.stdout).toContain('  - start Docker')
    expect(box.sh('systemctl is-active docker.service').trim()).toBe('active')
  }, 180_000)

  it('a start that never finishes fails the step within the bound, with the daemon log', () => {
    // A dockerd that never tells systemd it is ready (Type=notify): Docker's unit sets no timeout.
    box.write(
      DROP_IN,
      '[Service]\nExecStart=\nExecStart=/bin/sh -c "echo dgs-e2e: never ready; exec sleep infinity"\n'
    )
    box.sh('systemctl daemon-reload && systemctl stop docker.socket docker.service')
    expect(box.sh('systemctl show -p TimeoutStartUSec --value docker.service').trim()).toBe(
      'infinity'
    )
    const run = box.run(plain)
    box.sh(
      `rm -f ${DROP_IN} && systemctl daemon-reload && systemctl stop docker.service; systemctl start docker.service`
    )
    expect(run.code).toBe(1)
    expect(run.seconds).toBeLessThan(200)
    expect(errorLine(run)).toMatch(
      /^'systemctl start docker' did not finish within 120 s: dockerd never reported that it is ready\. Last lines of its log:\n/
    )
    expect(errorLine(run)).toContain('dgs-e2e: never ready')
  }, 300_000)
})

describe('Debian 13: docker.io without its client', () => {
  let box: Box
  beforeAll(() => {
    box = Box.start({suite: 'trixie', state: 'engine'})
    box.sh('DEBIAN_FRONTEND=noninteractive apt-get remove -y -q docker-cli >/dev/null')
  }, BOOT_TIMEOUT)
  afterAll(() => box?.remove())

  it('with install-docker: false the step says no docker client, and changes nothing', () => {
    const before = box.dpkgState()
    const run = box.run({...plain, 'install-docker': 'false'})
    expect(run.code).toBe(1)
    expect(errorLine(run)).toBe(
      'dockerd is installed but there is no docker client, and install-docker is false: install the docker client (Debian 13 and later ship it as docker-cli: sudo apt-get install docker-cli).'
    )
    expect(box.dpkgState()).toBe(before)
  })

  it('otherwise the client is installed and the daemon left running as it was', () => {
    const pid = box.dockerdPid()
    expect(pid).toBeDefined()
    const run = box.run(plain)
    expectSuccess(run)
    expect(run.stdout).toContain('no docker client')
    expect(ran(run, 'apt-get')).toBe(true)
    expect(box.sh("dpkg-query -W -f '${db:Status-Abbrev}' docker-cli")).toMatch(/^ii/)
    expect(box.dockerdPid()).toBe(pid)
    expect(run.outputs['docker-version']).toMatch(/^26\.1\./)
  }, 180_000)
})
