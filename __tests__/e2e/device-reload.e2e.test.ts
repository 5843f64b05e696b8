/**
 * Why containers lose their GPU on `systemctl daemon-reload`, shown without a GPU in a disposable
 * bookworm host with systemd on this machine's cgroup v1, Docker with the systemd cgroup driver.
 * A STAND-IN device node (char 240:0, a major reserved for local use with no driver behind it)
 * plays the GPU: opening it gives "No such device or address" when the container's device cgroup
 * allows it, "Operation not permitted" when it does not. The box is started with that device
 * allowed in its own cgroup (a child cgroup cannot allow what its parent denies).
 *
 * What NVIDIA's legacy runtime hook does (write the rule into the container's devices cgroup,
 * unknown to runc and systemd) is undone by daemon-reload; a device in the container's spec
 * (`--device`, which is how CDI injects GPUs) survives it only when /dev/char/MAJOR:MINOR exists,
 * which `nvidia-ctk system create-dev-char-symlinks` creates for the NVIDIA devices.
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {Box} from './bed/box.js'
import {BOOT_TIMEOUT} from './bed/prepare.js'

const IMAGE = 'dgs-e2e/busybox:latest'
const ALLOWED = "cat: can't open '/dev/dgs0': No such device or address"
const DENIED = "cat: can't open '/dev/dgs0': Operation not permitted"
let box: Box

/** What opening the stand-in device says inside a container. */
function open(container: string): string {
  return box.sh(`docker exec ${container} /bin/busybox cat /dev/dgs0 2>&1 || true`).trim()
}

/** A container started with the stand-in device: bind-mounted only (legacy), or in its spec. */
function run(name: string, how: 'hook' | 'spec'): void {
  const dev = how === 'spec' ? '--device /dev/dgs0' : '-v /dev/dgs0:/dev/dgs0'
  box.sh(`docker run -d --name ${name} ${dev} ${IMAGE} /bin/busybox sleep 600 >/dev/null`)
  if (how === 'hook') {
    // As nvidia-container-cli does in legacy mode: the rule goes straight into the cgroup.
    const id = box.sh(`docker inspect -f '{{.Id}}' ${name}`).trim()
    const scope = box.sh(`find /sys/fs/cgroup/devices -type d -name 'docker-${id}.scope'`).trim()
    expect(scope).not.toBe('')
    box.sh(`echo 'c 240:0 rwm' > ${scope}/devices.allow`)
  }
}

beforeAll(() => {
  box = Box.start({
    suite: 'bookworm',
    state: 'engine',
    images: true,
    extra: ['--device-cgroup-rule', 'c 240:0 rwm']
  })
  box.write('/etc/docker/daemon.json', '{"exec-opts": ["native.cgroupdriver=systemd"]}\n')
  box.sh('systemctl restart docker && mknod /dev/dgs0 c 240 0')
  box.waitDocker()
}, BOOT_TIMEOUT)
afterAll(() => box?.remove())

describe('systemctl daemon-reload and devices runc did not tell systemd about', () => {
  it('takes the device from a container that got it the legacy hook way, and from a spec device without /dev/char', () => {
    expect(box.sh("docker info --format '{{.CgroupDriver}} {{.CgroupVersion}}'").trim()).toBe(
      'systemd 1'
    )
    run('legacy', 'hook')
    run('spec-no-link', 'spec')
    expect(open('legacy')).toBe(ALLOWED)
    expect(open('spec-no-link')).toBe(ALLOWED)
    box.sh('systemctl daemon-reload')
    expect(open('legacy')).toBe(DENIED)
    expect(open('spec-no-link')).toBe(DENIED)
  }, 120_000)

  it('leaves it to a container with the device in its spec once /dev/char/240:0 exists', () => {
    box.sh('mkdir -p /dev/char && ln -sf ../dgs0 /dev/char/240:0')
    run('legacy-linked', 'hook')
    run('spec', 'spec')
    expect(open('spec')).toBe(ALLOWED)
    box.sh('systemctl daemon-reload')
    expect(open('spec')).toBe(ALLOWED)
    // The symlink alone does not save a device granted outside the spec.
    expect(open('legacy-linked')).toBe(DENIED)
  }, 120_000)
})
