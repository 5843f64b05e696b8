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
 *
 * Then the action applies that fix on a trixie host (Docker 26.1, systemd's cgroup driver): with
 * a STAND-IN nvidia-smi and a STAND-IN nvidia-ctk (fixtures/nvidia-ctk-standin.sh, which writes a
 * CDI spec for stand-in /dev/nvidia* nodes made with mknod: char 195, NVIDIA's major, with no
 * driver behind it here), a real `docker run --device nvidia.com/gpu=<uuid>` gets the node through
 * Docker's CDI; runc names it to systemd by its /dev/char link, the path the first experiment
 * shows surviving daemon-reload. (systemd 257 in that box does not rewrite device rules on
 * daemon-reload at all, so the loss itself is shown only in the bookworm box: Docker 20.10 there
 * has no CDI.)
 *
 * Last, what the action leaves alone: its own spec is removed once a STAND-IN of toolkit 1.18's
 * nvidia-cdi-refresh (its unit file and a spec in /var/run/cdi) is there; a spec and a udev rule
 * the administrator wrote are kept as they are, even after a driver change; a leased GPU that
 * spec does not name is left out of cdi-devices, with a warning.
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {Box, IN_BOX} from './bed/box.js'
import {BOOT_TIMEOUT} from './bed/prepare.js'
import {expectSuccess, parseOutputFile, waitFor, type ActionRun} from './harness.js'

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

const PORT = 58124
const uuid = (n: number): string => {
  const d = String(n)
  return `GPU-${d.repeat(8)}-${d.repeat(4)}-4${d.repeat(3)}-8${d.repeat(3)}-${d.repeat(12)}`
}
const CALLS = '/etc/nvidia-ctk-standin/calls'
const setup = {
  'docker-source': 'distro',
  'start-registry': 'false',
  'gpu-runtime': 'nvidia',
  'nvidia-apt-url': `http://127.0.0.1:${PORT}/stable/deb`,
  'nvidia-apt-key': `http://127.0.0.1:${PORT}/gpgkey`,
  'nvidia-toolkit-version': '1.17.8-1',
  'gpu-check': 'false',
  'gpu-health': 'off'
}
const said = (dev: string, what: string): string => `cat: can't open '${dev}': ${what}`

describe('the fix applied: CDI on Docker 26.1 with the systemd cgroup driver', () => {
  let host: Box
  let first: ActionRun
  // docker exec cannot join a container's cgroups in this box (systemd 257 on the host's cgroup v1
  // leaves no unified scope to join), so each container opens its device every 0.2 s and logs the
  // numbered result: the answer is the first line logged after the asking began.
  const probe = (dev: string): string =>
    `/bin/busybox sh -c 'i=0; while :; do i=$((i+1)); echo "$i $(/bin/busybox cat ${dev} 2>&1)"; /bin/busybox sleep 0.2; done'`
  const openIn = (container: string): string =>
    host
      .sh(
        `n0=$(docker logs --tail 1 ${container} 2>&1 | cut -d' ' -f1); n0=\${n0:-0}; ` +
          `for i in $(seq 1 100); do l=$(docker logs --tail 1 ${container} 2>&1); n=\${l%% *}; ` +
          `[ "\${n:-0}" -gt $((n0 + 1)) ] && { echo "\${l#* }"; exit 0; }; sleep 0.1; done; exit 1`
      )
      .trim()
  const daemonReloads = (run: ActionRun): string[][] =>
    run.commands.filter(c => c.includes('systemctl') && c.includes('daemon-reload'))

  beforeAll(() => {
    host = Box.start({
      suite: 'trixie',
      state: 'engine',
      images: true,
      extra: ['--device-cgroup-rule', 'c 195:* rwm']
    })
    host.serve('nvidia', PORT, '/gpgkey')
    host.sh(
      `install -m 0755 ${IN_BOX.scripts}/nvidia-smi-standin.sh /usr/local/bin/nvidia-smi && ` +
        `install -m 0755 ${IN_BOX.scripts}/nvidia-ctk-standin.sh /usr/bin/nvidia-ctk && ` +
        `install -m 0755 ${IN_BOX.scripts}/runner-worker.sh /usr/local/bin/Runner.Worker && ` +
        'mkdir -m 1777 /tmp/jobs && ' +
        'mknod -m 666 /dev/nvidia0 c 195 0 && mknod -m 666 /dev/nvidia1 c 195 1 && ' +
        'mknod -m 666 /dev/nvidiactl c 195 255'
    )
    host.write(
      '/etc/nvidia-smi-standin/gpus.csv',
      [0, 1].map(i => `${i}, ${uuid(i)}, NVIDIA H100 80GB HBM3, 0, 81559`).join('\n') + '\n'
    )
    host.write('/etc/nvidia-smi-standin/apps.csv', '')
    host.write('/etc/nvidia-smi-standin/driver', '550.54.15 12.4\n')
    host.write('/etc/docker/daemon.json', '{"exec-opts": ["native.cgroupdriver=systemd"]}\n')
    host.sh('systemctl restart docker')
    host.waitDocker()
  }, BOOT_TIMEOUT)
  afterAll(() => host?.remove())

  it('generates the spec, turns CDI on, makes the /dev/char links and their udev rule, and runs no daemon-reload', () => {
    expect(host.sh("docker info --format '{{.CgroupDriver}} {{.ServerVersion}}'").trim()).toMatch(
      /^systemd 26\.1\./
    )
    expect(host.exists('/dev/char/195:0')).toBe(false)
    first = host.run(setup)
    expectSuccess(first)
    expect(first.outputs['gpu-device-fix']).toBe('cdi')
    expect(first.summary).toContain('GPU device fix')
    const config = JSON.parse(host.read('/etc/docker/daemon.json') ?? '') as Record<string, unknown>
    expect(config['exec-opts']).toEqual(['native.cgroupdriver=systemd'])
    expect(config.features).toEqual({cdi: true})
    expect(host.sh("docker info --format '{{json .CDISpecDirs}}'").trim()).toContain('/etc/cdi')
    expect(host.read(CALLS)?.trim().split('\n')).toEqual([
      'cdi generate --output=/etc/cdi/nvidia.yaml',
      'system create-dev-char-symlinks --create-all'
    ])
    expect(host.read('/etc/cdi/nvidia.yaml')).toContain(`name: "${uuid(0)}"`)
    expect(host.read('/var/lib/docker-gpu-setup/cdi-spec.json')).toContain(
      '"driver":"550.54.15","toolkit":"1.17.8-1"'
    )
    expect(host.read('/lib/udev/rules.d/71-nvidia-dev-char.rules')).toContain(
      'ACTION=="add", DEVPATH=="/bus/pci/drivers/nvidia", RUN+="/usr/bin/nvidia-ctk system create-dev-char-symlinks --create-all"'
    )
    expect(host.sh('readlink /dev/char/195:0 /dev/char/195:255').trim().split('\n')).toEqual([
      '../nvidia0',
      '../nvidiactl'
    ])
    expect(daemonReloads(first)).toEqual([])
  }, 600_000)

  let cdiDevices = ''
  let cdiDev = ''
  it('leases hand out the GPUs by CDI name, and docker run --device with that name gets the device', async () => {
    const dir = '/tmp/jobs/cdi'
    const job = host.start(
      {gpus: '1', 'gpu-health': 'off'},
      {entry: 'gpus', wrap: ['/usr/local/bin/Runner.Worker', dir], env: {GITHUB_JOB: 'cdi'}}
    )
    await waitFor(() => host.exists(`${dir}/main.rc`), 120_000, 'the lease step')
    expect(host.read(`${dir}/main.rc`)?.trim()).toBe('0')
    const outputs = parseOutputFile(host.read(`${dir}/main.output`) ?? '')
    const exported = parseOutputFile(host.read(`${dir}/main.env`) ?? '')
    cdiDevices = outputs['cdi-devices']
    expect(cdiDevices).toBe(`nvidia.com/gpu=${outputs['gpu-uuids']}`)
    expect(exported.CDI_DEVICES).toBe(cdiDevices)
    host.sh(`touch ${dir}/post`)
    await job.done
    const dev = outputs['gpu-indexes'] === '0' ? '/dev/nvidia0' : '/dev/nvidia1'
    host.sh(`docker run -d --name cdi --device ${cdiDevices} ${IMAGE} ${probe(dev)} >/dev/null`)
    expect(openIn('cdi')).toBe(said(dev, 'No such device or address'))
    // The spec's common edits: the control device comes with every GPU.
    expect(
      host
        .sh(
          `docker run --rm --device ${cdiDevices} ${IMAGE} /bin/busybox cat /dev/nvidiactl 2>&1 || true`
        )
        .trim()
    ).toBe(said('/dev/nvidiactl', 'No such device or address'))
    cdiDev = dev
  }, 300_000)

  it('changes nothing when run again: no generate, no restart, no daemon-reload', () => {
    // systemd stamps each load of its units (UnitsLoadTimestamp): a daemon-reload changes it.
    const loads = (): string => host.sh('systemctl show -p UnitsLoadTimestampMonotonic').trim()
    const before = loads()
    const pid = host.dockerdPid()
    const calls = host.read(CALLS)
    const again = host.run(setup)
    expectSuccess(again)
    expect(again.outputs['gpu-device-fix']).toBe('cdi')
    expect(again.outputs['daemon-config-changed']).toBe('false')
    expect(again.outputs['daemon-change']).toBe('none')
    expect(host.dockerdPid()).toBe(pid)
    expect(host.read(CALLS)).toBe(calls)
    expect(daemonReloads(again)).toEqual([])
    expect(loads()).toBe(before)
    host.sh('systemctl daemon-reload')
    expect(loads()).not.toBe(before)
  }, 600_000)

  it('names the CDI-injected device to systemd by its /dev/char link, and keeps it across daemon-reload', () => {
    // runc tells systemd a spec device as DeviceAllow=/dev/char/MAJOR:MINOR: with the link there,
    // systemd's rules keep it (the bookworm experiment above shows the loss without it). systemd
    // 257 in this box leaves device rules alone on daemon-reload, so the loss itself cannot be
    // shown here, only that the CDI device takes the path that survives it.
    const id = host.sh("docker inspect -f '{{.Id}}' cdi").trim()
    const minor = cdiDev.slice('/dev/nvidia'.length)
    expect(host.sh(`systemctl show -p DeviceAllow docker-${id}.scope`)).toContain(
      `DeviceAllow=/dev/char/195:${minor} rwm`
    )
    expect(host.sh(`readlink /dev/char/195:${minor}`).trim()).toBe(`../nvidia${minor}`)
    host.sh('systemctl daemon-reload')
    expect(openIn('cdi')).toBe(said(cdiDev, 'No such device or address'))
  }, 120_000)

  const SPEC = '/etc/cdi/nvidia.yaml'
  const RECORD = '/var/lib/docker-gpu-setup/cdi-spec.json'
  const RULE = '/lib/udev/rules.d/71-nvidia-dev-char.rules'
  const REFRESH_UNIT = '/usr/lib/systemd/system/nvidia-cdi-refresh.service'
  const TOOLKIT_SPEC = '/var/run/cdi/nvidia.yaml'

  it("removes its own spec once the toolkit keeps one (1.18's nvidia-cdi-refresh), and restarts nothing", () => {
    // A STAND-IN for toolkit 1.18's unit and the spec it writes (a copy of the generated one).
    host.write(REFRESH_UNIT, '[Service]\nType=oneshot\nExecStart=/bin/true\n')
    host.sh(`mkdir -p /var/run/cdi && cp ${SPEC} ${TOOLKIT_SPEC}`)
    const pid = host.dockerdPid()
    const calls = host.read(CALLS)
    const run = host.run(setup)
    expectSuccess(run)
    expect(host.exists(SPEC)).toBe(false)
    expect(host.exists(RECORD)).toBe(false)
    expect(host.exists(TOOLKIT_SPEC)).toBe(true)
    expect(host.read(CALLS)).toBe(calls)
    expect(host.dockerdPid()).toBe(pid)
    expect(run.outputs['gpu-device-fix']).toBe('cdi')
  }, 600_000)

  it("keeps the administrator's spec and udev rule as they are, even after a driver change, and says so", () => {
    host.sh(`rm -f ${REFRESH_UNIT} ${TOOLKIT_SPEC}`)
    // The administrator's spec: GPUs named by index only (another --device-name-strategy).
    const mine =
      '---\ncdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n' +
      [0, 1]
        .map(
          i => `- name: "${i}"\n  containerEdits:\n    deviceNodes:\n    - path: /dev/nvidia${i}\n`
        )
        .join('') +
      'containerEdits:\n  deviceNodes:\n  - path: /dev/nvidiactl\n'
    host.write(SPEC, mine)
    const rule = `${host.read(RULE) ?? ''}# kept by the administrator\n`
    host.write(RULE, rule)
    host.write('/etc/nvidia-smi-standin/driver', '570.86.15 12.8\n')
    const calls = host.read(CALLS)
    const run = host.run(setup)
    expectSuccess(run)
    expect(host.read(SPEC)).toBe(mine)
    expect(host.read(RULE)).toBe(rule)
    expect(host.read(CALLS)).toBe(calls)
    expect(host.exists(RECORD)).toBe(false)
    expect(run.stdout).toContain(
      `CDI: ${SPEC} was not generated by this action (or was changed since): it is the administrator's and is used as it is`
    )
    expect(run.stdout).toContain(`${RULE} is not the rule this action writes`)
  }, 600_000)

  it('leaves a leased GPU the spec does not name out of cdi-devices, and names it in a warning', async () => {
    // A spec older than a GPU swap: it names GPU 0 (by index) and `all`, not GPU 1.
    host.write(
      SPEC,
      '---\ncdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n' +
        '- name: "0"\n  containerEdits:\n    deviceNodes:\n    - path: /dev/nvidia0\n' +
        '- name: all\n  containerEdits:\n    deviceNodes:\n    - path: /dev/nvidia0\n'
    )
    const dir = '/tmp/jobs/cdi-stale'
    const job = host.start(
      {gpus: '2', 'gpu-health': 'off'},
      {entry: 'gpus', wrap: ['/usr/local/bin/Runner.Worker', dir], env: {GITHUB_JOB: 'cdi-stale'}}
    )
    await waitFor(() => host.exists(`${dir}/main.rc`), 120_000, 'the lease step')
    expect(host.read(`${dir}/main.rc`)?.trim()).toBe('0')
    const outputs = parseOutputFile(host.read(`${dir}/main.output`) ?? '')
    host.sh(`touch ${dir}/post`)
    const {stdout} = await job.done
    expect(outputs['gpu-indexes']).toBe('0,1')
    expect(outputs['cdi-devices']).toBe('nvidia.com/gpu=0')
    const warned = stdout
      .split('\n')
      .filter(l => l.includes('::warning') && l.includes('name no device for leased GPU(s)'))
    expect(warned).toHaveLength(1)
    expect(warned[0]).toContain(`name no device for leased GPU(s) 1 (${uuid(1)})`)
  }, 300_000)
})
