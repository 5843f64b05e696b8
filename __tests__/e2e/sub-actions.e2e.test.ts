/**
 * The sub-actions (registry, push, gpus: dist/<entry>.js of the one bundle) in a disposable
 * bookworm host with systemd, as the shared-host example runs them: the registry step starts a
 * registry with basic auth and TLS; the push step names only the registry and the images (and its
 * login), pushes to it and leaves it as it is; so does the whole-host action with start-registry
 * auto. A stand-in nvidia-smi answers for two GPUs; a stand-in Runner.Worker runs the gpus step's
 * main and post steps, as the runner's worker does.
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {Box, IN_BOX} from './bed/box.js'
import {BOOT_TIMEOUT} from './bed/prepare.js'
import {expectSuccess, parseOutputFile, ran, waitFor, type ActionRun} from './harness.js'

const NAME = 'docker-gpu-setup-registry'
const REGISTRY = 'localhost:5443'
const PASSWORD = 'sub-actions-pw-5813'
const login = {username: 'ci', password: PASSWORD}
let box: Box

/** The registry container as `docker inspect` sees it: same id and start time, same container run. */
function container(): string {
  return box
    .sh(
      `docker inspect --format '{{.Id}} {{.State.StartedAt}} {{.State.Running}} {{json .Config.Env}}' ${NAME}`
    )
    .trim()
}

/** The repositories the registry holds, read over TLS with the login. */
function catalog(): string {
  return box.sh(
    `curl -sf -u ci:${PASSWORD} --cacert ${IN_BOX.fixtures}/tls/tls.crt https://${REGISTRY}/v2/_catalog`
  )
}

/** What a push step did to the host: no package, daemon or registry container command. */
function changedHost(run: ActionRun): string[] {
  return ['apt-get', 'dpkg', 'systemctl', 'kill'].filter(p => ran(run, p))
}

beforeAll(() => {
  box = Box.start({suite: 'bookworm', state: 'engine', images: true})
  box.sh(
    `install -m 0755 ${IN_BOX.scripts}/nvidia-smi-standin.sh /usr/local/bin/nvidia-smi && ` +
      `install -m 0755 ${IN_BOX.scripts}/runner-worker.sh /usr/local/bin/Runner.Worker`
  )
  const uuid = (d: string): string =>
    `GPU-${d.repeat(8)}-${d.repeat(4)}-4${d.repeat(3)}-8${d.repeat(3)}-${d.repeat(12)}`
  box.write(
    '/etc/nvidia-smi-standin/gpus.csv',
    `0, ${uuid('0')}, NVIDIA H100 80GB HBM3, 0, 81559\n1, ${uuid('1')}, NVIDIA H100 80GB HBM3, 0, 81559\n`
  )
  box.write('/etc/nvidia-smi-standin/apps.csv', '')
}, BOOT_TIMEOUT)
afterAll(() => box?.remove())

describe('the shared-host example, one step after another', () => {
  let before = ''

  it('registry: starts the registry with basic auth and TLS, and sets only its outputs', () => {
    const run = box.run(
      {
        registry: REGISTRY,
        'registry-data': '/srv/shared-registry',
        'registry-htpasswd': `ci:${PASSWORD}`,
        'registry-tls-cert': `${IN_BOX.fixtures}/tls/tls.crt`,
        'registry-tls-key': `${IN_BOX.fixtures}/tls/tls.key`
      },
      {entry: 'registry'}
    )
    expectSuccess(run)
    expect(run.outputs).toMatchObject({registry: REGISTRY, 'registry-started': 'true'})
    expect(run.outputs.images).toBeUndefined()
    expect(ran(run, 'apt-get')).toBe(false)
    expect(ran(run, 'nvidia-smi')).toBe(false)
    before = container()
    expect(before).toContain('REGISTRY_AUTH=htpasswd')
    expect(before).toContain('REGISTRY_HTTP_TLS_CERTIFICATE')
  }, 180_000)

  it('push: naming only the registry and the images, pushes to it and leaves it as it is', () => {
    const run = box.run(
      {registry: REGISTRY, images: 'dgs-e2e/app1:1 => team/app1:1', ...login},
      {entry: 'push'}
    )
    expectSuccess(run)
    const [image] = JSON.parse(run.outputs.images) as {target: string; status: string}[]
    expect(image).toMatchObject({target: `${REGISTRY}/team/app1:1`, status: 'pushed'})
    expect(run.outputs.digests).toMatch(/^localhost:5443\/team\/app1:1@sha256:[0-9a-f]{64}$/)
    expect(Object.keys(run.outputs).sort()).toEqual(['digests', 'images', 'registry'])
    expect(changedHost(run)).toEqual([])
    expect(container()).toBe(before)
    expect(catalog()).toContain('team/app1')
  }, 180_000)

  it('the whole-host action with start-registry auto, naming that registry, does the same', () => {
    const run = box.run({
      'docker-source': 'distro',
      'gpu-runtime': 'none',
      registry: REGISTRY,
      images: 'dgs-e2e/app2:1 => team/app2:1',
      ...login
    })
    expectSuccess(run)
    expect(run.outputs['registry-started']).toBe('false')
    expect(run.summary).toContain('kept as it is')
    expect(container()).toBe(before)
    expect(catalog()).toContain('team/app2')
  }, 180_000)
})

describe('gpus', () => {
  it('leases a GPU to the job until its post step releases it', async () => {
    const dir = '/tmp/jobs/gpus-step'
    box.sh('mkdir -p -m 1777 /tmp/jobs')
    const job = box.start(
      {gpus: '1'},
      {
        entry: 'gpus',
        wrap: ['/usr/local/bin/Runner.Worker', dir],
        env: {GITHUB_JOB: 'train', GITHUB_REPOSITORY: 'org/repo', GITHUB_RUN_ID: '4242'}
      }
    )
    await waitFor(() => box.exists(`${dir}/main.rc`), 120_000, 'the gpus step to lease')
    expect(box.read(`${dir}/main.rc`)?.trim()).toBe('0')
    const outputs = parseOutputFile(box.read(`${dir}/main.output`) ?? '')
    expect(Object.keys(outputs).sort()).toEqual([
      'cdi-devices',
      'docker-gpu-options',
      'docker-gpus',
      'gpu-health',
      'gpu-indexes',
      'gpu-uuids'
    ])
    expect(outputs['gpu-indexes']).toMatch(/^[01]$/)
    // No CDI on this box's Docker (20.10): no CDI names.
    expect(outputs['cdi-devices']).toBe('')
    const leases = (): string =>
      box.sh('ls /run/docker-gpu-setup 2>/dev/null | grep -c "\\.lease$" || true').trim()
    expect(leases()).toBe('1')
    box.sh(`touch ${dir}/post`)
    await job.done
    expect(box.read(`${dir}/post.rc`)?.trim()).toBe('0')
    expect(leases()).toBe('0')
  }, 240_000)
})
