/**
 * gpu-isolation and the gpu-lease runtime, in disposable hosts: bookworm (Docker 20.10, systemd)
 * and forky (Docker 28.5, no init: the action starts dockerd). STAND-INs:
 * the runner (/opt/runner with the stand-in Runner.Worker, which runs the job hooks its .env
 * names), nvidia-smi (two GPUs), and the NVIDIA toolkit: nvidia-container-runtime
 * (fixtures/nvidia-toolkit-standin.sh, Docker's `nvidia` runtime) reports for each container what
 * it asked for and which GPUs the toolkit's rules would give it under config.toml, then runs runc.
 */
import {createHash} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {LEASE_RUNTIME_FILES} from '../../src/docker/lease-runtime.js'
import {ISOLATION_RECORD, TOOLKIT_CONFIG} from '../../src/phases/isolation/toolkit-config.js'
import {Box, IN_BOX, RUNNER_USER} from './bed/box.js'
import {BOOT_TIMEOUT} from './bed/prepare.js'
import {expectSuccess, parseOutputFile} from './harness.js'
import type {Suite} from './bed/recipes.js'
import {RunnerJob} from './runner-job.js'

const RUNNER = '/opt/runner'
const WORKER = `${RUNNER}/bin/Runner.Worker`
const LABEL = createHash('sha256').update(RUNNER.toLowerCase(), 'utf8').digest('hex').slice(0, 6)
const uuid = (n: number): string => {
  const d = String(n)
  return `GPU-${d.repeat(8)}-${d.repeat(4)}-4${d.repeat(3)}-8${d.repeat(3)}-${d.repeat(12)}`
}
const ALL = [uuid(0), uuid(1)]
const ENVVAR = 'accept-nvidia-visible-devices-envvar-when-unprivileged'
const MOUNTS = 'accept-nvidia-visible-devices-as-volume-mounts'
// The toolkit's default config.toml, as `nvidia-ctk config default` writes it (cited in the file).
const SHIPPED = readFileSync('__fixtures__/nvidia-container-toolkit/config.toml', 'utf8')
// An image as every CUDA base image is: NVIDIA_VISIBLE_DEVICES=all.
const CUDA_ALL = 'dgs-e2e/cuda-all:latest'
const base = {'docker-source': 'distro', 'gpu-runtime': 'none', 'start-registry': 'false'}
let box: Box

/** What the stand-in toolkit reported for a container. */
interface Report {
  env: string[]
  mounts: string[]
  privileged: boolean
  devices: string[]
}

/**
 * Creates and starts a container of CUDA_ALL with `options` (words) and returns the stand-in
 * toolkit's report, written when the runtime creates it: what it asked for and the GPUs it would
 * get. (A container with CAP_SYS_ADMIN cannot start inside the box, itself a container; its report
 * is written before runc fails.)
 */
function gpusOf(options: string): Report {
  const id = box.sh(`docker create ${options} ${CUDA_ALL} /bin/busybox true`).trim()
  box.sh(`docker start -a ${id} >/dev/null 2>&1 || true; docker rm -f ${id} >/dev/null`)
  return JSON.parse(box.read(`/var/log/nvidia-standin/${id}.json`) ?? '{}') as Report
}

/** `docker run` of CUDA_ALL with `options`: its exit status and what it printed. */
function runOf(options: string): {rc: number; output: string} {
  const out = box.sh(
    `docker run --rm ${options} ${CUDA_ALL} /bin/busybox true 2>&1 || echo "rc=$?"`
  )
  const rc = /(?:^|\n)rc=(\d+)\n$/.exec(out)
  return {rc: rc ? Number(rc[1]) : 0, output: rc ? out.slice(0, rc.index) : out}
}

/** The `gpu-isolation` output. */
const isolationOf = (outputs: Record<string, string>) =>
  JSON.parse(outputs['gpu-isolation']) as {mode: string; changed: Record<string, boolean | null>}

/** A container job's container, made as the runner makes it: its label, its externals at /__e. */
const JOB_CONTAINER = `--label ${LABEL} -v ${RUNNER}/externals:/__e:ro --runtime=gpu-lease`

/** Boots the suite's box with the stand-ins, Docker running with the stand-in `nvidia` runtime. */
function boot(suite: Suite): void {
  box = Box.start({suite, state: 'engine', images: suite !== 'forky'})
  const s = IN_BOX.scripts
  box.sh(
    `install -m 0755 ${s}/nvidia-smi-standin.sh /usr/local/bin/nvidia-smi && ` +
      `install -D -m 0755 ${s}/runner-worker.sh ${WORKER} && ` +
      `install -m 0755 ${s}/nvidia-toolkit-standin.sh /usr/local/bin/nvidia-container-runtime && ` +
      `install -m 0644 ${s}/nvidia-toolkit-standin-report.mjs /usr/local/bin/`
  )
  // Docker accepts --gpus only with the toolkit's hook on PATH; the stand-in runtime reports.
  box.write('/usr/local/bin/nvidia-container-runtime-hook', '#!/bin/sh\ncat >/dev/null\nexit 0\n')
  // Stand-in GPU device nodes (the NVIDIA driver's major, 195): what --privileged and --device give.
  box.sh('mknod -m 0666 /dev/nvidia0 c 195 0 && mknod -m 0666 /dev/nvidia1 c 195 1')
  box.write(TOOLKIT_CONFIG, SHIPPED)
  box.write(
    '/etc/docker/daemon.json',
    '{"runtimes": {"nvidia": {"path": "/usr/local/bin/nvidia-container-runtime"}}}\n'
  )
  box.sh('chmod 0755 /usr/local/bin/nvidia-container-runtime-hook')
  box.write(
    '/etc/nvidia-smi-standin/gpus.csv',
    [0, 1].map(i => `${i}, ${uuid(i)}, NVIDIA H100 80GB HBM3, 0, 81559`).join('\n') + '\n'
  )
  if (box.init === 'none') {
    // No init: nothing runs dockerd until a job does; the action starts it, with that file.
    expectSuccess(box.run(base))
    box.loadImages()
  } else box.sh('systemctl restart docker')
  box.sh(
    `printf 'FROM dgs-e2e/busybox:latest\\nENV NVIDIA_VISIBLE_DEVICES=all\\n' | docker build -q -t ${CUDA_ALL} -`
  )
  box.write(`${RUNNER}/.runner`, '{"agentid": 7, "agentname": "gpu-host-1", "poolid": 1}\n')
  box.write(`${RUNNER}/.env`, 'LANG=C.UTF-8\n')
  box.sh(
    `mkdir -p ${RUNNER}/externals && chown -R ${RUNNER_USER}: ${RUNNER} && mkdir -m 1777 /tmp/jobs`
  )
}

const job = (name: string) =>
  new RunnerJob(() => box, name, {user: RUNNER_USER, worker: WORKER, inputs: base})

/** The job's hook-taken lease (its started hook's NVIDIA_VISIBLE_DEVICES). */
const leaseOf = (j: RunnerJob): string =>
  parseOutputFile(box.read(`${j.dir}/started.env`) ?? '').NVIDIA_VISIBLE_DEVICES

describe.each([
  ['bookworm', 'Docker 20.10, systemd'],
  ['forky', 'Docker 28.5, no init']
] as [Suite, string][])('gpu-isolation and the gpu-lease runtime on %s (%s)', suite => {
  beforeAll(() => boot(suite), BOOT_TIMEOUT)
  afterAll(async () => {
    await RunnerJob.killRunning()
    box?.remove()
  })

  it('strict: sets the two keys (every other line kept) and records them; runner-hooks install registers gpu-lease', async () => {
    // Off before: an image's `all` reaches every GPU through the nvidia runtime.
    expect(gpusOf('--runtime=nvidia').devices).toEqual(ALL)
    const admin = job('install').start({
      'runner-hooks': 'install',
      gpus: '1',
      'gpu-isolation': 'strict'
    })
    const main = await admin.main()
    expect(main.rc).toBe('0')
    expect(JSON.parse(main.outputs['gpu-isolation'])).toEqual({
      mode: 'strict',
      config: TOOLKIT_CONFIG,
      changed: {[ENVVAR]: false, [MOUNTS]: true},
      keys: {[ENVVAR]: false, [MOUNTS]: true}
    })
    expect(box.read(TOOLKIT_CONFIG)).toBe(
      SHIPPED.replace(
        '#swarm-resource = "DOCKER_RESOURCE_GPU"\n',
        `#swarm-resource = "DOCKER_RESOURCE_GPU"\n${ENVVAR} = false\n${MOUNTS} = true\n`
      )
    )
    expect(JSON.parse(box.read(ISOLATION_RECORD) ?? '{}')).toEqual({[ENVVAR]: null, [MOUNTS]: null})
    expect(JSON.parse(box.read('/etc/docker/daemon.json') ?? '{}')).toEqual({
      runtimes: {
        nvidia: {path: '/usr/local/bin/nvidia-container-runtime'},
        'gpu-lease': {path: LEASE_RUNTIME_FILES.script}
      }
    })
    expect(box.sh(`docker info --format '{{json .Runtimes}}'`)).toContain('"gpu-lease"')
    expect(
      box.sh(`stat -c '%U %a' ${LEASE_RUNTIME_FILES.script} ${LEASE_RUNTIME_FILES.node}`)
    ).toBe('root 755\nroot 755\n')
    expect((await admin.end('post')).rc).toBe(0)
    // A rerun of strict changes nothing, byte for byte.
    const before = box.sh(`stat -c %Y ${TOOLKIT_CONFIG}; cat ${TOOLKIT_CONFIG}`)
    const again = job('strict-again').start({'gpu-isolation': 'strict'})
    expect(isolationOf((await again.main()).outputs).changed).toEqual({})
    expect(box.sh(`stat -c %Y ${TOOLKIT_CONFIG}; cat ${TOOLKIT_CONFIG}`)).toBe(before)
    expect((await again.end('post')).rc).toBe(0)
  }, 300_000)

  it("strict: a plain run gets nothing from its image or --gpus; the lease's options and the gpu-lease runtime get the leased GPU; what escapes is measured", async () => {
    const before = box.sh(`stat -c %Y ${TOOLKIT_CONFIG}; cat ${TOOLKIT_CONFIG}`)
    // A job of the hooked runner that does not name gpu-isolation (keep): its started hook
    // leases, and the host stays strict.
    const j = job('strict-job').start({gpus: '1'})
    const main = await j.main()
    expect(main.rc).toBe('0')
    expect(isolationOf(main.outputs)).toEqual({mode: 'keep', config: TOOLKIT_CONFIG, changed: {}})
    const leased = leaseOf(j)
    expect(ALL).toContain(leased)
    expect(main.outputs['gpu-uuids']).toBe(leased)
    expect(box.sh(`stat -c %Y ${TOOLKIT_CONFIG}; cat ${TOOLKIT_CONFIG}`)).toBe(before)
    const options = main.outputs['docker-gpu-options']
    expect(options).toBe(
      `-e NVIDIA_VISIBLE_DEVICES=${leased} -v /dev/null:/var/run/nvidia-container-devices/${leased}`
    )
    expect(parseOutputFile(box.read(`${j.dir}/main.env`) ?? '').DOCKER_GPU_OPTIONS).toBe(options)
    // The started hook exports them to the job's steps too.
    expect(parseOutputFile(box.read(`${j.dir}/started.env`) ?? '').DOCKER_GPU_OPTIONS).toBe(options)

    const nvidia = (o: string) => gpusOf(`--runtime=nvidia ${o}`).devices
    expect(nvidia('')).toEqual([])
    expect(nvidia(options)).toEqual([leased])
    // Docker passes --gpus as NVIDIA_VISIBLE_DEVICES: strict ignores it too.
    expect(nvidia(`--gpus '"device=${leased}"'`)).toEqual([])
    expect(nvidia('--gpus all')).toEqual([])
    // What still escapes: CAP_SYS_ADMIN keeps the variable; a mount named `all` is a request.
    expect(nvidia('--privileged')).toEqual(ALL)
    expect(nvidia('--cap-add SYS_ADMIN')).toEqual(ALL)
    expect(nvidia('-v /dev/null:/var/run/nvidia-container-devices/all')).toEqual(ALL)

    // The job container as the runner makes it, with options: --runtime=gpu-lease.
    const inJob = gpusOf(JOB_CONTAINER)
    expect(inJob.env).toEqual([`NVIDIA_VISIBLE_DEVICES=${leased}`])
    expect(inJob.mounts).toEqual([leased])
    expect(inJob.devices).toEqual([leased])
    // gpu-lease refuses what no lease can limit: GPU device nodes given to the container itself
    // (--privileged gives it every host device, the stand-in /dev/nvidia0 and 1 included).
    for (const given of ['--privileged', '--device /dev/nvidia1']) {
      const refused = runOf(`${JOB_CONTAINER} ${given}`)
      expect(refused.rc).not.toBe(0)
      expect(refused.output).toContain('which no lease can limit')
    }
    // An unlimited rlimit, written as uint64's largest value, survives the rewrite: runc reads the
    // spec and gets as far as setting it (which the box, itself a container, does not permit);
    // a rounded value would stop it at decoding config.json (`cannot unmarshal number`).
    const unlimited = runOf(`${JOB_CONTAINER} --ulimit memlock=-1`)
    expect(unlimited.output).not.toContain('unmarshal')
    expect(unlimited.output).toMatch(/^$|error setting rlimit type 8: operation not permitted/)
    // gpu-lease closes what escapes the toolkit's own rules, for the containers that use it.
    expect(
      gpusOf(`${JOB_CONTAINER} --gpus all -v /dev/null:/var/run/nvidia-container-devices/all`)
        .devices
    ).toEqual([leased])
    // A container of no runner, or of another runner, gets no GPU: fail closed.
    const none = gpusOf('--runtime=gpu-lease')
    expect(none.env).toEqual(['NVIDIA_VISIBLE_DEVICES=void'])
    expect(none.devices).toEqual([])
    box.sh('mkdir -p /opt/other-runner/externals')
    expect(gpusOf('-v /opt/other-runner/externals:/__e:ro --runtime=gpu-lease').devices).toEqual([])
    expect((await j.end('post')).rc).toBe(0)
    // The job ended: its lease went, and so do its containers' GPUs.
    expect(gpusOf(JOB_CONTAINER).devices).toEqual([])
  }, 300_000)

  it('off: puts back exactly what strict changed; the gpu-lease runtime still gives the job its lease', async () => {
    const j = job('off-job').start({'gpu-isolation': 'off'})
    const main = await j.main()
    expect(main.rc).toBe('0')
    expect(JSON.parse(main.outputs['gpu-isolation'])).toEqual({
      mode: 'off',
      config: TOOLKIT_CONFIG,
      changed: {[ENVVAR]: null, [MOUNTS]: null},
      keys: {[ENVVAR]: null, [MOUNTS]: null}
    })
    expect(box.read(TOOLKIT_CONFIG)).toBe(SHIPPED)
    expect(box.exists(ISOLATION_RECORD)).toBe(false)
    const leased = leaseOf(j)
    expect(ALL).toContain(leased)
    // Off, an image's `all` reaches every GPU again; the lease's options and the job container
    // still get only the lease.
    expect(gpusOf('--runtime=nvidia').devices).toEqual(ALL)
    const options = parseOutputFile(box.read(`${j.dir}/started.env`) ?? '').DOCKER_GPU_OPTIONS
    expect(gpusOf(`--runtime=nvidia ${options}`).devices).toEqual([leased])
    const inJob = gpusOf(JOB_CONTAINER)
    expect(inJob.env).toEqual([`NVIDIA_VISIBLE_DEVICES=${leased}`])
    expect(inJob.devices).toEqual([leased])
    // A container that did not ask for gpu-lease is not touched by it.
    expect(gpusOf('--runtime=nvidia').env).toEqual(['NVIDIA_VISIBLE_DEVICES=all'])
    // Off, the variable counts: --gpus gives what it names, and the image's `all` the rest.
    const nvidia = (o: string) => gpusOf(`--runtime=nvidia ${o}`).devices
    expect(nvidia(`--gpus '"device=${leased}"'`)).toEqual([leased])
    expect(nvidia('--gpus all')).toEqual(ALL)
    expect(nvidia('--privileged')).toEqual(ALL)
    expect(nvidia('-v /dev/null:/var/run/nvidia-container-devices/all')).toEqual(ALL)
    expect(gpusOf(`${JOB_CONTAINER} --gpus all`).devices).toEqual([leased])
    expect(runOf(`${JOB_CONTAINER} --privileged`).output).toContain('which no lease can limit')
    expect(gpusOf('--runtime=gpu-lease').devices).toEqual([])
    expect((await j.end('post')).rc).toBe(0)
    // A second off changes nothing.
    const again = job('off-again').start({'gpu-isolation': 'off'})
    expect(isolationOf((await again.main()).outputs).changed).toEqual({})
    expect(box.read(TOOLKIT_CONFIG)).toBe(SHIPPED)
    expect((await again.end('post')).rc).toBe(0)
  }, 300_000)
})
