/**
 * Inputs, dry runs and the post step, in a disposable bookworm host with no engine: bad input
 * fails with one line and changes nothing, as root and as a sudo user.
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {Box, RUNNER_USER} from './bed/box.js'
import {BOOT_TIMEOUT} from './bed/prepare.js'
import {errorLine, explain} from './harness.js'

let box: Box

/** Everything a run could change on the box, as one comparable text. */
function hostState(): string {
  return box.sh(
    [
      "dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n' | sort",
      'ps -eo pid,comm | grep -w dockerd || echo no dockerd',
      'cat /etc/group',
      'ls -la /etc/apt/sources.list.d /etc/apt/keyrings 2>/dev/null || true',
      'sha256sum /etc/docker/daemon.json 2>/dev/null || echo "no daemon.json"',
      'apt-mark showhold',
      'ls -a /run/lock /var/lib'
    ].join('; ')
  )
}

beforeAll(() => {
  box = Box.start({suite: 'bookworm', state: 'base'})
}, BOOT_TIMEOUT)
afterAll(() => box?.remove())

describe.each([
  ['root', undefined],
  ['a non-root user with passwordless sudo', RUNNER_USER]
])('foundation, as %s', (_who, user) => {
  it.each([
    [
      {'install-docker': 'maybe'},
      `Input 'install-docker' has an invalid value "maybe": use auto, true or false`
    ],
    [
      {registry: 'myhost'},
      `Input 'registry' has an invalid value "myhost": a bare host name would be read as a Docker Hub namespace: add a port (myhost:5000) or use a name with a dot`
    ],
    [
      {images: 'app; rm -rf /'},
      `Input 'images' has an invalid value "app; rm -rf /": line 1: a reference cannot contain spaces`
    ],
    [
      {tags: 'v1'},
      `Input 'tags' has an invalid value "v1": tags are added to the images in images, which is empty`
    ],
    [
      {'registry-tls-cert': '/etc/hostname'},
      `Input 'registry-tls-key' has an invalid value "": registry-tls-cert is set: give its key file too`
    ],
    [
      {'daemon-config': '{"a":'},
      `Input 'daemon-config' has an invalid value "{\\"a\\":": not valid JSON (Unexpected end of JSON input)`
    ],
    [
      {'push-concurrency': '0'},
      `Input 'push-concurrency' has an invalid value "0": use a whole number from 1 to 16`
    ]
  ])('bad input %j fails with one line, exit 1, and changes nothing', (inputs, message) => {
    const before = hostState()
    const run = box.run(inputs, {user})
    expect(run.code).toBe(1)
    expect(errorLine(run)).toBe(message)
    expect(run.commands.filter(c => c[0] === 'sudo' || c[0] === 'apt-get')).toEqual([])
    expect(hostState()).toBe(before)
    // Outputs are still written, so later steps can read them.
    expect(Object.keys(run.outputs)).toContain('docker-version')
    expect(run.summary).toContain("> **Error:** Input '")
    // No phase ran: no table.
    expect(run.summary).not.toMatch(/^\|/m)
  })

  it('a dry run plans, prints what it would change, and changes nothing', () => {
    const before = hostState()
    const run = box.run({'dry-run': 'true', 'docker-source': 'distro'}, {user})
    expect(run.code).toBe(0)
    expect(hostState()).toBe(before)
    expect(run.stdout).toContain('::group::Docker engine')
    expect(run.stdout).toContain('Found: no Docker Engine (dockerd missing)')
    expect(run.stdout).toContain('  - install docker.io')
    expect(run.summary).toMatch(/dry run: nothing was changed/)
    // Every output is declared and written.
    expect(Object.keys(run.outputs)).toEqual(
      expect.arrayContaining(['docker-version', 'docker-changed', 'registry', 'images', 'digests'])
    )
    expect(run.outputs.registry).toBe('localhost:5000')
    expect(run.outputs['docker-changed']).toBe('false')
    expect(run.summary).toContain('| Docker engine | 📝 would change: ')
    expect(run.summary).toContain('| no Docker Engine |')
    expect(run.summary).toContain('<details open><summary>Would change: ')
  })

  it('prints the summary to the log when GITHUB_STEP_SUMMARY is missing (a person running it by hand)', () => {
    const run = box.run({'dry-run': 'true'}, {user, env: {GITHUB_STEP_SUMMARY: ''}})
    expect(run.code).toBe(0)
    expect(run.stdout).toContain('## docker-gpu-setup:')
    expect(run.summary).toBe('')
  })

  it('the post step with cleanup: none changes nothing and succeeds', () => {
    const before = hostState()
    const run = box.run({cleanup: 'none'}, {user, post: {isPost: 'true'}})
    expect(run.code).toBe(0)
    expect(run.stdout).toContain('cleanup: none')
    expect(hostState()).toBe(before)
  })
})

describe('outside a runner', () => {
  it('runs on the action.yml defaults when no INPUT_* is set', () => {
    const run = box.run({'dry-run': 'true'})
    // Only dry-run was set; every other input took its default.
    expect(run.code).toBe(0)
    expect(run.outputs.registry).toBe('localhost:5000')
    expect(explain(run)).not.toContain('::error::')
  })
})
