/**
 * hold-nvidia-driver in a disposable bookworm host: Debian's unattended-upgrades runs for real
 * against a local apt repository (file:, its own origin) that serves two STAND-IN packages built
 * in the box with equivs: `nvidia-driver-standin`, named like a driver package, and
 * `dgs-control-standin`, which nothing holds. New versions of both are published between runs.
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {Box} from './bed/box.js'
import {BOOT_TIMEOUT} from './bed/prepare.js'
import {expectSuccess} from './harness.js'

const FRAGMENT = '/etc/apt/apt.conf.d/51docker-gpu-setup-hold-nvidia'
const base = {'docker-source': 'distro', 'gpu-runtime': 'auto', 'start-registry': 'false'}
let box: Box

/** Builds version `v` of both stand-ins into the repository and refreshes apt's lists. */
function publish(v: number): void {
  box.sh(
    `for p in nvidia-driver-standin dgs-control-standin; do
       printf 'Section: misc\\nPriority: optional\\nStandards-Version: 3.9.2\\nPackage: %s\\nVersion: %s\\nDescription: STAND-IN package for tests\\n' "$p" ${v} >/srv/build/$p.ctl
       (cd /srv/build && equivs-build $p.ctl >/dev/null) && mv /srv/build/\${p}_${v}_all.deb /srv/repo/
     done
     cd /srv/repo && apt-ftparchive packages . >Packages &&
       apt-ftparchive -o APT::FTPArchive::Release::Origin=dgs-standin -o APT::FTPArchive::Release::Label=dgs-standin release . >Release &&
       apt-get update -qq -o Dir::Etc::sourcelist=/etc/apt/sources.list.d/standin.list -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0`
  )
}

function versions(): Record<string, string> {
  const out = box.sh(
    "dpkg-query -W -f '${Package} ${Version}\\n' nvidia-driver-standin dgs-control-standin"
  )
  return Object.fromEntries(
    out
      .trim()
      .split('\n')
      .map(l => l.split(' ') as [string, string])
  )
}

/** One run of Debian's unattended-upgrades, as its timer would start it. */
function unattendedUpgrade(): string {
  return box.sh('unattended-upgrade -v 2>&1')
}

beforeAll(() => {
  box = Box.start({suite: 'bookworm', state: 'engine'})
  box.sh(
    'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq unattended-upgrades equivs apt-utils >/dev/null'
  )
  box.sh('mkdir -p /srv/build /srv/repo')
  box.write('/etc/apt/sources.list.d/standin.list', 'deb [trusted=yes] file:/srv/repo ./\n')
  // Only the stand-in repository's origin: no upgrade of the box's own Debian packages.
  box.write(
    '/etc/apt/apt.conf.d/52dgs-test-origins',
    '#clear Unattended-Upgrade::Origins-Pattern;\nUnattended-Upgrade::Origins-Pattern { "origin=dgs-standin"; };\n'
  )
  publish(1)
  box.sh(
    'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nvidia-driver-standin dgs-control-standin >/dev/null'
  )
}, BOOT_TIMEOUT + 300_000)
afterAll(() => box?.remove())

describe('hold-nvidia-driver', () => {
  it('without the hold, unattended-upgrades upgrades the stand-in driver package', () => {
    const r = box.run({...base, 'hold-nvidia-driver': 'false'})
    expectSuccess(r)
    expect(box.exists(FRAGMENT)).toBe(false)
    publish(2)
    unattendedUpgrade()
    expect(versions()).toEqual({'nvidia-driver-standin': '2', 'dgs-control-standin': '2'})
  }, 300_000)

  it('with it (the default), unattended-upgrades keeps off the driver package only', () => {
    const r = box.run(base)
    expectSuccess(r)
    expect(r.stdout).toContain(`keep unattended-upgrades off the NVIDIA packages (${FRAGMENT})`)
    expect(box.read(FRAGMENT)).toContain('Unattended-Upgrade::Package-Blacklist {')
    publish(3)
    const log = unattendedUpgrade()
    expect(versions()).toEqual({'nvidia-driver-standin': '2', 'dgs-control-standin': '3'})
    expect(log).toMatch(/nvidia-driver-standin/)
  }, 300_000)

  it('manual apt still upgrades it', () => {
    box.sh('DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nvidia-driver-standin >/dev/null')
    expect(versions()['nvidia-driver-standin']).toBe('3')
  }, 120_000)

  it('a rerun changes nothing; hold-nvidia-driver: false removes the fragment', () => {
    const again = box.run(base)
    expectSuccess(again)
    expect(again.summary).toMatch(/\| NVIDIA driver hold \| ✅ unchanged/)
    const off = box.run({...base, 'hold-nvidia-driver': 'false'})
    expectSuccess(off)
    expect(box.exists(FRAGMENT)).toBe(false)
  }, 120_000)
})
