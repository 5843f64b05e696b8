/**
 * What the disposable hosts are made of. Every image of the test bed is named after a hash of this
 * file (and of the fixture scripts), so editing a recipe rebuilds exactly what it describes, once
 * per machine; nothing else in the bed changes an image.
 */

/** The Debian suites the bed boots, with the engine each one ships as docker.io. */
export type Suite = 'bookworm' | 'trixie' | 'forky'

export interface HostRecipe {
  suite: Suite
  /** What a box of this suite runs as PID 1. */
  init: 'systemd' | 'none'
  /** Packages the engine image adds to the base image (docker.io, and the client where it is separate). */
  engine: string[]
  /** Facts the recipe promises, checked once after the engine image is built. */
  expect: {docker: RegExp; systemd?: RegExp}
  /**
   * The debootstrap script to use when the outer host's debootstrap has none for the suite
   * (forky is testing: older debootstraps know it only as sid).
   */
  script?: string
}

export const HOSTS: Record<Suite, HostRecipe> = {
  // Debian 12: systemd 252, Docker 20.10 (no `dockerd --validate`).
  bookworm: {
    suite: 'bookworm',
    init: 'systemd',
    engine: ['docker.io'],
    expect: {docker: /^20\.10\./, systemd: /^252/}
  },
  // Debian 13: systemd 257, Docker 26.1; docker.io only recommends docker-cli.
  trixie: {
    suite: 'trixie',
    init: 'systemd',
    engine: ['docker.io', 'docker-cli'],
    expect: {docker: /^26\.1\./, systemd: /^257/}
  },
  // Debian forky: Docker 28.5 with containerd 2.1. Its systemd (262) refuses a cgroup v1 host, so
  // the box runs with no init at all (like a container-based runner): the action starts dockerd.
  forky: {
    suite: 'forky',
    init: 'none',
    engine: ['docker.io', 'docker-cli'],
    expect: {docker: /^28\.5\./},
    script: 'sid'
  }
}

/** Packages every base image gets on top of debootstrap's minbase. */
export const BASE_PACKAGES = [
  'systemd',
  'systemd-sysv',
  'dbus',
  'iproute2',
  'ca-certificates',
  'curl',
  'gnupg',
  'sudo',
  'procps',
  // the bed serves fixture repositories from inside a box (http.server) and holds apt's locks
  // the way apt does (fcntl); neither is part of what the action needs
  'python3'
]

export const MIRROR = 'http://deb.debian.org/debian'

/** The non-root runner user with passwordless sudo that every base image has. */
export const RUNNER_USER = 'dgs-runner'

/**
 * Run in the debootstrapped root (chroot) before it is imported: the runner user, units a
 * container cannot run masked, and apt's cache emptied so no box starts with packages in it.
 */
export const BASE_SETUP = `
set -eu
useradd -m -s /bin/bash ${RUNNER_USER}
echo '${RUNNER_USER} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/${RUNNER_USER}
chmod 0440 /etc/sudoers.d/${RUNNER_USER}
# No kernel modules can be loaded from inside a box; the unit would only mark the host degraded.
ln -sf /dev/null /etc/systemd/system/systemd-modules-load.service
# The mirror serves testing's Release with a Valid-Until that may lie before this machine's clock.
echo 'Acquire::Check-Valid-Until "false";' > /etc/apt/apt.conf.d/99dgs-bed-valid-until
echo dgs-box > /etc/hostname
apt-get clean
rm -rf /var/cache/apt/archives/partial/* /tmp/* /var/log/apt/*
`

/** Run in a booted base box to make the engine image: the engine from Debian, nothing started by hand. */
export function engineSetup(recipe: HostRecipe): string {
  return `
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends ${recipe.engine.join(' ')} >/dev/null
apt-get clean
rm -rf /var/cache/apt/archives/partial/* /var/log/apt/*
`
}
