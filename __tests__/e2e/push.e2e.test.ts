/** The push phase against a real local registry (built from Debian's, bed/images.ts) in disposable hosts. */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {Box, IN_BOX} from './bed/box.js'
import {BOOT_TIMEOUT} from './bed/prepare.js'
import {errorLine, expectSuccess, ran, type ActionRun} from './harness.js'

const base = {'docker-source': 'distro', 'gpu-runtime': 'none', 'registry-data': '/srv/data'}
const IMAGES = 'dgs-e2e/app1:1\ndgs-e2e/app2:1 => team/app2:v2\n# a comment\ndgs-e2e/app3:1'
const MANIFEST =
  'application/vnd.docker.distribution.manifest.v2+json,application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json'

interface Row {
  source: string
  target: string
  digest: string
  size: number
  status: string
  error?: string
}

function rows(run: ActionRun): Row[] {
  return JSON.parse(run.outputs.images) as Row[]
}

/** What the registry holds for a tag: config and layers, in bytes, as its manifest lists them. */
function registryBytes(box: Box, target: string): number {
  const m = /^([^/]+)\/(.+):([^:]+)$/.exec(target) as RegExpExecArray
  const manifest = JSON.parse(
    box.sh(`curl -sf -H 'Accept: ${MANIFEST}' http://${m[1]}/v2/${m[2]}/manifests/${m[3]}`)
  ) as {config: {size: number}; layers: {size: number}[]}
  return manifest.layers.reduce((a, l) => a + l.size, manifest.config.size)
}

/** HTTP requests of a run that change a registry (from its debug log). */
function writes(run: ActionRun): string[] {
  return run.stdout.split('\n').filter(l => /^::debug::http: (PUT|PATCH|POST) /.test(l))
}

/** What the registry itself says: the digest it holds for a tag. */
function registryDigest(box: Box, target: string, auth = ''): string {
  const m = /^([^/]+)\/(.+):([^:]+)$/.exec(target) as RegExpExecArray
  const headers = box.sh(
    `curl -sfI ${auth} -H 'Accept: ${MANIFEST}' http://${m[1]}/v2/${m[2]}/manifests/${m[3]}`
  )
  return /docker-content-digest: (\S+)/i.exec(headers)?.[1] ?? ''
}

describe('pushing to the local registry (bookworm, systemd)', () => {
  let box: Box
  beforeAll(() => {
    box = Box.start({suite: 'bookworm', state: 'engine', images: true})
  }, BOOT_TIMEOUT)
  afterAll(() => box?.remove())

  it('pushes three images and two extra tags; the registry agrees with every digest', () => {
    const run = box.run({...base, images: IMAGES, tags: 'main, sha-1'})
    expectSuccess(run)
    expect(rows(run).map(r => r.target)).toEqual([
      'localhost:5000/dgs-e2e/app1:1',
      'localhost:5000/dgs-e2e/app1:main',
      'localhost:5000/dgs-e2e/app1:sha-1',
      'localhost:5000/team/app2:v2',
      'localhost:5000/team/app2:main',
      'localhost:5000/team/app2:sha-1',
      'localhost:5000/dgs-e2e/app3:1',
      'localhost:5000/dgs-e2e/app3:main',
      'localhost:5000/dgs-e2e/app3:sha-1'
    ])
    for (const r of rows(run)) {
      expect(r.status).toBe('pushed')
      expect(r.digest).toMatch(/^sha256:[0-9a-f]{64}$/)
      // The image's bytes in the registry, not the manifest's: busybox alone is over 1 MB (2 MB as is).
      expect(r.size).toBe(registryBytes(box, r.target))
      expect(r.size).toBeGreaterThan(1_000_000)
      expect(registryDigest(box, r.target)).toBe(r.digest)
    }
    expect(box.sh('curl -sf http://localhost:5000/v2/team/app2/tags/list')).toContain('"v2"')
    expect(run.outputs.digests.split('\n')).toEqual(rows(run).map(r => `${r.target}@${r.digest}`))
    expect(run.summary).toContain('### Images: 9 pushed')
    expect(run.summary).toContain('| `localhost:5000/team/app2:v2` | `dgs-e2e/app2:1` | `sha256:')
    expect(run.summary).toContain(
      '| Push images | 🔧 changed: 9 steps | 9 pushed · 0 unchanged · 0 failed · layers to localhost:5000 `uncompressed` (a registry on this host, on loopback) |'
    )
    // The digests to copy: the same text as the output.
    expect(run.summary).toContain(`\`\`\`text\n${run.outputs.digests}\n\`\`\``)
  }, 180_000)

  it('a rerun pushes nothing and reports every image unchanged', () => {
    const run = box.run({...base, images: IMAGES, tags: 'main, sha-1'})
    expectSuccess(run)
    expect(run.commands.some(c => c.includes('push') || c.includes('save'))).toBe(false)
    expect(writes(run)).toEqual([])
    expect(rows(run)).toHaveLength(9)
    expect(rows(run).every(r => r.status === 'unchanged')).toBe(true)
    expect(rows(run).every(r => r.size === registryBytes(box, r.target))).toBe(true)
    expect(run.summary).toContain('host already right: nothing changed')
    expect(run.summary).toContain(
      '| Push images | ✅ unchanged | 0 pushed · 9 unchanged · 0 failed |'
    )
  })

  it('a new image of a base the repository holds sends only its own layer (Docker 20.10’s export)', () => {
    // app1 and app2 share their busybox layer. Docker 20.10 names it in the export by a folder ID
    // of its own; the folder's json places it in the chain, so the layer is known before it is read.
    const first = box.run({...base, images: 'dgs-e2e/app1:1 => reuse/app:1'})
    expectSuccess(first)
    expect(first.stdout).toContain('dgs-e2e/app1:1: 2 layer(s) sent')
    const second = box.run({...base, images: 'dgs-e2e/app2:1 => reuse/app:2'})
    expectSuccess(second)
    expect(second.stdout).toContain('dgs-e2e/app2:1: 1 layer(s) sent (0 as gzip')
    expect(second.stdout).toMatch(
      /1 layer\(s\) sent \(0 as gzip, [0-9.]+ MB\), 1 already in localhost:5000/
    )
    const [row] = rows(second)
    expect(row.status).toBe('pushed')
    expect(registryDigest(box, row.target)).toBe(row.digest)
  }, 180_000)

  it('push-method docker pushes with docker push; the digest and size are the registry’s', () => {
    const run = box.run({
      ...base,
      'push-method': 'docker',
      images: 'dgs-e2e/app1:1 => by-docker/app1:1'
    })
    expectSuccess(run)
    expect(
      ran(run, 'docker') &&
        run.commands.some(c => c.join(' ') === 'docker push localhost:5000/by-docker/app1:1')
    ).toBe(true)
    expect(run.stdout).toContain('sent by docker push')
    const [row] = rows(run)
    expect(row.status).toBe('pushed')
    expect(registryDigest(box, row.target)).toBe(row.digest)
    expect(row.size).toBe(registryBytes(box, row.target))
  }, 180_000)

  it('a missing local image fails before any push, naming it and its line', () => {
    const run = box.run({...base, images: 'dgs-e2e/app1:1\ndgs-e2e/missing:9'})
    expect(run.code).toBe(1)
    expect(errorLine(run)).toBe(
      'images: dgs-e2e/missing:9 (line 2) is not on this host; nothing was pushed. Build or pull it before this step.'
    )
    expect(ran(run, 'docker') && run.commands.some(c => c.includes('push'))).toBe(false)
  })

  it('a registry that fails in the middle of a run: retries, then names what did not land and reports what did', () => {
    // A proxy in the box in front of the registry that answers 503 to one repository's manifest
    // uploads (fixtures/refusing-proxy.mjs): the same image fails on every attempt.
    box.sh(
      `(setsid /dgs/node ${IN_BOX.scripts}/refusing-proxy.mjs 5077 5000 dgs-e2e/app3 /srv/refused >/dev/null 2>&1 &); ` +
        'for i in $(seq 1 50); do curl -s -o /dev/null http://127.0.0.1:5077/v2/ && exit 0; sleep 0.1; done; exit 1'
    )
    // The proxy's registry already holds dgs-e2e/app3:1 (the first test pushed it), which a run
    // would find unchanged: remove it, so the run has to push it.
    box.sh(
      `curl -sf -X DELETE http://localhost:5000/v2/dgs-e2e/app3/manifests/${registryDigest(box, 'localhost:5000/dgs-e2e/app3:1')}`
    )
    const run = box.run({
      ...base,
      registry: '127.0.0.1:5077',
      'start-registry': 'false',
      images: 'dgs-e2e/app1:1\ndgs-e2e/app3:1',
      'push-concurrency': '1',
      'push-retries': '2'
    })
    expect(run.code).toBe(1)
    expect(errorLine(run)).toBe(
      '1 of 2 image(s) did not land: 127.0.0.1:5077/dgs-e2e/app3:1. In the registry: 127.0.0.1:5077/dgs-e2e/app1:1.'
    )
    expect(run.stdout).toContain('127.0.0.1:5077/dgs-e2e/app3:1: push failed')
    expect(run.stdout).toContain('retry 2 of 2')
    // The annotation (its title is escaped as the runner's command syntax requires).
    expect(run.stdout).toContain('::error title=push 127.0.0.1%3A5077/dgs-e2e/app3%3A1::')
    expect(rows(run).map(r => [r.target, r.status])).toEqual([
      ['127.0.0.1:5077/dgs-e2e/app1:1', expect.stringMatching(/^(pushed|unchanged)$/)],
      ['127.0.0.1:5077/dgs-e2e/app3:1', 'failed']
    ])
    expect(box.sh('wc -l < /srv/refused').trim()).toBe('3')
  }, 180_000)

  describe('with credentials', () => {
    const password = 'push-secret-9931'
    it('logs in with the password on stdin into a per-job DOCKER_CONFIG; the password appears nowhere', () => {
      const run = box.run({
        ...base,
        'registry-htpasswd': `ci:${password}`,
        username: 'ci',
        password,
        images: 'dgs-e2e/app1:1 => private/app1:1'
      })
      expectSuccess(run)
      expect(rows(run)[0].status).toBe('pushed')
      expect(registryDigest(box, 'localhost:5000/private/app1:1', `-u ci:${password}`)).toBe(
        rows(run)[0].digest
      )
      const shown = run.stdout.replace(/^::add-mask::.*$/gm, '')
      expect(`${shown}${run.stderr}${run.summary}${JSON.stringify(run.commands)}`).not.toContain(
        password
      )
      const config = run.exported.DOCKER_CONFIG
      expect(config).toMatch(/docker-gpu-setup-docker-config$/)
      expect(run.state['docker-config']).toBe(config)
      expect(
        box.sh('curl -s -o /dev/null -w "%{http_code}" http://localhost:5000/v2/_catalog')
      ).toBe('401')
    }, 180_000)

    it('without login inputs, the credentials an earlier docker login left are used', () => {
      box.sh(
        `printf '%s' '${password}' | docker login -u ci --password-stdin localhost:5000 >/dev/null 2>&1`
      )
      try {
        const run = box.run({
          ...base,
          'registry-htpasswd': `ci:${password}`,
          images: 'dgs-e2e/app2:1 => private/app2:1'
        })
        expectSuccess(run)
        expect(rows(run)[0].status).toBe('pushed')
        expect(registryDigest(box, 'localhost:5000/private/app2:1', `-u ci:${password}`)).toBe(
          rows(run)[0].digest
        )
        const shown = run.stdout.replace(/^::add-mask::.*$/gm, '')
        expect(`${shown}${run.stderr}${run.summary}${JSON.stringify(run.commands)}`).not.toContain(
          password
        )
      } finally {
        box.sh('docker logout localhost:5000 >/dev/null 2>&1')
      }
    }, 180_000)

    it('the post step removes the DOCKER_CONFIG it made', () => {
      const dir = box.sh('mktemp -d /tmp/dgs-config-XXXX').trim()
      const post = box.run({}, {post: {isPost: 'true', 'docker-config': dir}})
      expectSuccess(post)
      expect(box.exists(dir)).toBe(false)
    })
  })
})

describe('Docker 28.5 with the containerd image store (forky, no init)', () => {
  let box: Box
  beforeAll(() => {
    box = Box.start({suite: 'forky', state: 'engine'})
  }, BOOT_TIMEOUT)
  afterAll(() => box?.remove())

  it('pushes to the plain-HTTP local registry and the digests hold', () => {
    const snapshotter = JSON.stringify({features: {'containerd-snapshotter': true}})
    expectSuccess(box.run({...base, 'daemon-config': snapshotter, 'start-registry': 'false'}))
    expect(box.sh("docker info --format '{{.Driver}}'").trim()).toMatch(/overlayfs|snapshotter/)
    // Images loaded after the switch land in containerd's store.
    box.loadImages()
    const run = box.run({
      ...base,
      'daemon-config': snapshotter,
      images: 'dgs-e2e/app1:1\ndgs-e2e/app2:1'
    })
    expectSuccess(run)
    for (const r of rows(run)) {
      expect(r.status).toBe('pushed')
      expect(registryDigest(box, r.target)).toBe(r.digest)
    }
    box.sh('docker rmi localhost:5000/dgs-e2e/app2:1 >/dev/null')
    box.sh('docker pull -q localhost:5000/dgs-e2e/app2:1 >/dev/null')
    expect(box.sh('docker run --rm localhost:5000/dgs-e2e/app2:1').trim()).toBe('app2')
    const again = box.run({
      ...base,
      'daemon-config': snapshotter,
      images: 'dgs-e2e/app1:1\ndgs-e2e/app2:1'
    })
    expectSuccess(again)
    expect(rows(again).every(r => r.status === 'unchanged')).toBe(true)
  }, 300_000)
})

describe('registries reached as the daemon reaches them (bookworm, systemd)', () => {
  let box: Box
  let ip: string
  beforeAll(() => {
    box = Box.start({suite: 'bookworm', state: 'engine', images: true})
    // The box's own address on its network: not loopback, so Docker holds it secure by default.
    ip = box.sh("ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1").trim()
  }, BOOT_TIMEOUT)
  afterAll(() => box?.remove())

  it('a TLS registry on a non-loopback address, trusted only through /etc/docker/certs.d', () => {
    const registry = `${ip}:5443`
    box.sh(
      `openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=${ip} -addext subjectAltName=IP:${ip} ` +
        '-keyout /srv/ip.key -out /srv/ip.crt 2>/dev/null'
    )
    const tls = {'registry-tls-cert': '/srv/ip.crt', 'registry-tls-key': '/srv/ip.key'}
    const first = box.run({
      ...base,
      ...tls,
      registry,
      'registry-data': '/srv/tls',
      images: 'dgs-e2e/app1:1'
    })
    expectSuccess(first)
    expect(first.stdout).toContain(`${registry}: secure registry`)
    // The registry this run runs, on an address of this host: its layers go uncompressed.
    expect(first.stdout).toContain(
      `Layers to ${registry}: uncompressed (the registry this run runs on this host)`
    )
    expect(box.exists(`/etc/docker/certs.d/${registry}/ca.crt`)).toBe(true)
    // Without the TLS inputs the action knows the certificate only from certs.d, as the daemon does.
    const mine = {...base, registry, 'start-registry': 'false'}
    const second = box.run({...mine, images: 'dgs-e2e/app2:1'})
    expectSuccess(second)
    // Not started by this run and not on loopback: gzip, and that pulls too.
    expect(second.stdout).toContain(
      `Layers to ${registry}: gzip (a registry elsewhere: its layers cross a network)`
    )
    expect(rows(second)[0].status).toBe('pushed')
    box.sh(`docker pull -q ${registry}/dgs-e2e/app2:1 >/dev/null`)
    expect(box.sh(`docker run --rm ${registry}/dgs-e2e/app2:1`).trim()).toBe('app2')
    // Without it the certificate is refused, and that is not retried.
    box.sh(`mv /etc/docker/certs.d/${registry}/ca.crt /srv/ca.crt.aside`)
    try {
      const refused = box.run({...mine, images: 'dgs-e2e/app3:1'})
      expect(refused.code).toBe(1)
      expect(rows(refused)[0].error).toMatch(/certificate/)
      expect(refused.stdout).not.toContain('retry 1 of')
    } finally {
      box.sh(`mv /srv/ca.crt.aside /etc/docker/certs.d/${registry}/ca.crt`)
    }
  }, 300_000)

  it('a plain-HTTP registry on a non-loopback address, insecure because the daemon says so', () => {
    const registry = `${ip}:5002`
    const run = box.run({
      ...base,
      registry,
      'registry-data': '/srv/insecure',
      images: 'dgs-e2e/app3:1'
    })
    expectSuccess(run)
    expect(run.outputs['daemon-config-changed']).toBe('true')
    expect(JSON.parse(box.read('/etc/docker/daemon.json') ?? '{}')).toMatchObject({
      'insecure-registries': [registry]
    })
    expect(run.stdout).toContain(`${registry}: insecure registry`)
    expect(rows(run)[0].status).toBe('pushed')
    expect(registryDigest(box, `${registry}/dgs-e2e/app3:1`)).toBe(rows(run)[0].digest)
    box.sh(`docker pull -q ${registry}/dgs-e2e/app3:1 >/dev/null`)
    expect(box.sh(`docker run --rm ${registry}/dgs-e2e/app3:1`).trim()).toBe('app3')
  }, 300_000)
})
