import {readFileSync} from 'node:fs'
import {describe, expect, it} from '@jest/globals'
import {parse} from 'yaml'
import {GROUPS, INPUT_META, withTables} from '../../scripts/inputs-table.mjs'
import type {InputHost} from '../../src/input-fields.js'
import {
  INPUT_DEFAULTS,
  parseInputs,
  phaseSettings,
  secretValues,
  type AllRawInputs
} from '../../src/inputs.js'
import type {RawOverrides} from './inputs-helper.js'

const files: Record<string, 'file' | 'dir'> = {
  '/srv/debs': 'dir',
  '/srv/cert.pem': 'file',
  '/srv/key.pem': 'file',
  '/srv/registry.tar': 'file',
  '/srv/nvidia.gpg': 'file'
}
const host: InputHost = {pathKind: p => files[p]}

function raw(overrides: RawOverrides = {}): AllRawInputs {
  return {...INPUT_DEFAULTS, ...overrides}
}

describe('parseInputs defaults', () => {
  it('accepts the action.yml defaults and reads them as the contract says', () => {
    const inputs = parseInputs(raw(), host)
    expect(inputs.engine.installDocker).toBe('auto')
    expect(inputs.engine.dockerSource).toBe('docker')
    expect(inputs.registry.registry).toEqual({
      host: 'localhost',
      port: 5000,
      text: 'localhost:5000'
    })
    expect(inputs.daemon.nvidiaDefaultRuntime).toBe(true)
    expect(inputs.registry.registryMirror).toBe(false)
    expect(inputs.registry.registryTls).toBeUndefined()
    expect(inputs.push.pushConcurrency).toBe(2)
    expect(inputs.push.pushRetries).toBe(3)
    expect(inputs.push.images).toEqual([])
    expect(inputs.push.login).toBeUndefined()
    expect(inputs.engine.dockerUsers).toBeUndefined()
    expect(inputs.run).toEqual({dryRun: false, summary: true, cleanup: 'none'})
    expect(Object.isFrozen(inputs)).toBe(true)
    for (const slice of Object.values(inputs)) expect(Object.isFrozen(slice)).toBe(true)
  })

  it('reads lists, JSON, files and secrets', () => {
    const inputs = parseInputs(
      raw({
        'docker-source': 'offline',
        'offline-debs': '/srv/debs',
        'docker-users': 'runner, ci\n# comment\nbuilder',
        'daemon-config': '{"log-driver":"local"}',
        'registry-tls-cert': '/srv/cert.pem',
        'registry-tls-key': '/srv/key.pem',
        'registry-htpasswd': 'ci:s3cr:et\nbot:pw',
        'registry-mirror': 'https://mirror.example.com/',
        images: 'app:1\nghcr.io/org/tool:2 => team/tool:v2',
        tags: 'sha-abc',
        'dry-run': 'True'
      }),
      host
    )
    expect(inputs.engine.dockerUsers).toEqual(['runner', 'ci', 'builder'])
    expect(inputs.daemon.daemonConfig).toEqual({'log-driver': 'local'})
    expect(inputs.registry.registryTls).toEqual({cert: '/srv/cert.pem', key: '/srv/key.pem'})
    expect(inputs.registry.registryHtpasswd).toEqual([
      {user: 'ci', password: 's3cr:et'},
      {user: 'bot', password: 'pw'}
    ])
    expect(inputs.registry.registryMirror).toBe('https://mirror.example.com')
    expect(inputs.push.images.map(i => i.target)).toEqual([
      'localhost:5000/app:1',
      'localhost:5000/app:sha-abc',
      'localhost:5000/team/tool:v2',
      'localhost:5000/team/tool:sha-abc'
    ])
    expect(inputs.run.dryRun).toBe(true)
  })
})

// Each bad value fails with exactly one line naming the input, the value and what is accepted.
const BAD: [string, RawOverrides, string][] = [
  [
    'install-docker enum',
    {'install-docker': 'yes'},
    `Input 'install-docker' has an invalid value "yes": use auto, true or false`
  ],
  [
    'docker-source enum',
    {'docker-source': 'snap'},
    `Input 'docker-source' has an invalid value "snap": use one of docker, distro, offline`
  ],
  [
    'docker-version form',
    {'docker-version': 'latest'},
    `Input 'docker-version' has an invalid value "latest": use a version such as 27.3.1 or 5:27.3.1-1~ubuntu.24.04~noble`
  ],
  [
    'docker-version shell',
    {'docker-version': '27.3.1; reboot'},
    `Input 'docker-version' has an invalid value "27.3.1; reboot": use a version such as 27.3.1 or 5:27.3.1-1~ubuntu.24.04~noble`
  ],
  [
    'docker-apt-url scheme',
    {'docker-apt-url': 'ftp://mirror/docker'},
    `Input 'docker-apt-url' has an invalid value "ftp://mirror/docker": use an absolute http or https or file URL`
  ],
  [
    'docker-apt-url relative',
    {'docker-apt-url': 'mirror/docker'},
    `Input 'docker-apt-url' has an invalid value "mirror/docker": use an absolute http or https or file URL`
  ],
  [
    'offline-debs missing',
    {'docker-source': 'offline', 'offline-debs': '/nope'},
    `Input 'offline-debs' has an invalid value "/nope": no folder exists at that path`
  ],
  [
    'offline-debs relative',
    {'docker-source': 'offline', 'offline-debs': 'debs'},
    `Input 'offline-debs' has an invalid value "debs": use an absolute path to a folder`
  ],
  [
    'offline-debs without offline source',
    {'offline-debs': '/srv/debs'},
    `Input 'docker-source' has an invalid value "docker": offline-debs is set, so the host is air-gapped: set docker-source: offline`
  ],
  [
    'offline source without folder',
    {'docker-source': 'offline'},
    `Input 'offline-debs' has an invalid value "": docker-source: offline needs offline-debs, a folder of .deb files`
  ],
  [
    'docker-users name',
    {'docker-users': 'runner\nRoot User'},
    `Input 'docker-users' has an invalid value "Root User": use user names (lowercase, at most 32 characters)`
  ],
  [
    'daemon-config JSON',
    {'daemon-config': '{"log-driver": }'},
    `Input 'daemon-config' has an invalid value "{\\"log-driver\\": }": not valid JSON (Unexpected token '}', "{"log-driver": }" is not valid JSON)`
  ],
  [
    'daemon-config array',
    {'daemon-config': '[1]'},
    `Input 'daemon-config' has an invalid value "[1]": use a JSON object, e.g. {"log-driver": "local"}`
  ],
  [
    'daemon-config contradicts nvidia-default-runtime',
    {'daemon-config': '{"default-runtime":"runc"}'},
    `Input 'daemon-config' has an invalid value "\\"runc\\"": sets default-runtime while nvidia-default-runtime is true: set nvidia-default-runtime: false, or drop default-runtime`
  ],
  [
    'daemon-config contradicts the nvidia runtime entry, with or without a GPU',
    {'daemon-config': '{"runtimes": {"nvidia": {"path": "/opt/nv"}}}'},
    `Input 'daemon-config' has an invalid value "{\\"runtimes\\":{\\"nvidia\\":{\\"path\\":\\"/opt/nv\\"}}}": contradicts other inputs: runtimes.nvidia.path: gpu-runtime sets "nvidia-container-runtime" but daemon-config sets "/opt/nv"`
  ],
  [
    'daemon-config contradicts nvidia-cdi',
    {'daemon-config': '{"features": {"cdi": false}}', 'nvidia-cdi': 'true'},
    `Input 'daemon-config' has an invalid value "{\\"features\\":{\\"cdi\\":false}}": contradicts other inputs: features.cdi: gpu-runtime sets true but daemon-config sets false`
  ],
  [
    'gpu-runtime enum',
    {'gpu-runtime': 'cuda'},
    `Input 'gpu-runtime' has an invalid value "cuda": use one of auto, nvidia, none`
  ],
  [
    'nvidia-default-runtime bool',
    {'nvidia-default-runtime': 'yes'},
    `Input 'nvidia-default-runtime' has an invalid value "yes": use true or false`
  ],
  [
    'nvidia-toolkit-version form',
    {'nvidia-toolkit-version': 'v1.17'},
    `Input 'nvidia-toolkit-version' has an invalid value "v1.17": use a package version such as 1.17.8-1`
  ],
  [
    'nvidia-apt-key missing file',
    {'nvidia-apt-key': '/srv/missing.gpg'},
    `Input 'nvidia-apt-key' has an invalid value "/srv/missing.gpg": no file exists at that path`
  ],
  [
    'nvidia-cdi bool',
    {'nvidia-cdi': '1'},
    `Input 'nvidia-cdi' has an invalid value "1": use auto, true or false`
  ],
  [
    'gpu-check enum',
    {'gpu-check': 'always'},
    `Input 'gpu-check' has an invalid value "always": use auto, true or false`
  ],
  [
    'gpu-check-image reference',
    {'gpu-check-image': 'nvidia/CUDA:12'},
    `Input 'gpu-check-image' has an invalid value "nvidia/CUDA:12": not an image reference: "CUDA" is not a valid name component (lowercase letters, digits, and . _ __ - between them)`
  ],
  [
    'registry bare host',
    {registry: 'myhost'},
    `Input 'registry' has an invalid value "myhost": a bare host name would be read as a Docker Hub namespace: add a port (myhost:5000) or use a name with a dot`
  ],
  [
    'registry scheme',
    {registry: 'http://localhost:5000'},
    `Input 'registry' has an invalid value "http://localhost:5000": write host[:port] without a scheme (http:// or https://)`
  ],
  [
    'registry port',
    {registry: 'localhost:70000'},
    `Input 'registry' has an invalid value "localhost:70000": port "70000" is not a number from 1 to 65535`
  ],
  [
    'registry path',
    {registry: 'ghcr.io/org'},
    `Input 'registry' has an invalid value "ghcr.io/org": write host[:port] without a path`
  ],
  [
    'registry IPv6 without bracket',
    {registry: '[::1:5000'},
    `Input 'registry' has an invalid value "[::1:5000": an IPv6 address needs its closing ]`
  ],
  [
    'start-registry enum',
    {'start-registry': 'maybe'},
    `Input 'start-registry' has an invalid value "maybe": use auto, true or false`
  ],
  [
    'registry-image reference',
    {'registry-image': 'registry:3 --privileged'},
    `Input 'registry-image' has an invalid value "registry:3 --privileged": not an image reference: a reference cannot contain spaces`
  ],
  [
    'registry-image-archive missing',
    {'registry-image-archive': '/srv/none.tar'},
    `Input 'registry-image-archive' has an invalid value "/srv/none.tar": no file exists at that path`
  ],
  [
    'registry-bind address',
    {'registry-bind': 'localhost'},
    `Input 'registry-bind' has an invalid value "localhost": use a host IP address such as 127.0.0.1 or 0.0.0.0`
  ],
  [
    'registry-data relative',
    {'registry-data': 'data/registry'},
    `Input 'registry-data' has an invalid value "data/registry": use an absolute folder path other than /`
  ],
  [
    'registry-data root',
    {'registry-data': '/'},
    `Input 'registry-data' has an invalid value "/": use an absolute folder path other than /`
  ],
  [
    'registry-htpasswd without colon, secret hidden',
    {'registry-htpasswd': 'ci:pw\nhunter2'},
    `Input 'registry-htpasswd' has an invalid value "***": line 2: write user:password (user of letters, digits, . _ @ -; a non-empty password)`
  ],
  [
    'registry-htpasswd repeated user',
    {'registry-htpasswd': 'ci:a\nci:b'},
    `Input 'registry-htpasswd' has an invalid value "***": line 2: user ci is repeated`
  ],
  [
    'registry-tls-cert without key',
    {'registry-tls-cert': '/srv/cert.pem'},
    `Input 'registry-tls-key' has an invalid value "": registry-tls-cert is set: give its key file too`
  ],
  [
    'registry-tls-key without cert',
    {'registry-tls-key': '/srv/key.pem'},
    `Input 'registry-tls-cert' has an invalid value "": registry-tls-key is set: give its certificate file too`
  ],
  [
    'registry-mirror value',
    {'registry-mirror': 'docker-hub'},
    `Input 'registry-mirror' has an invalid value "docker-hub": use an absolute http or https URL`
  ],
  [
    'registry-mirror-port range',
    {'registry-mirror-port': '0'},
    `Input 'registry-mirror-port' has an invalid value "0": use a whole number from 1 to 65535`
  ],
  [
    'registry-mirror-port clash',
    {'registry-mirror': 'true', 'registry-mirror-port': '5000'},
    `Input 'registry-mirror-port' has an invalid value "5000": use a port other than the registry's own (5000)`
  ],
  [
    'insecure-registry enum',
    {'insecure-registry': 'always'},
    `Input 'insecure-registry' has an invalid value "always": use auto, true or false`
  ],
  [
    'username without password',
    {username: 'ci'},
    `Input 'password' has an invalid value "": username is set: give password too (from a secret)`
  ],
  [
    'password without username',
    {password: 'pw'},
    `Input 'username' has an invalid value "": password is set: give username too`
  ],
  [
    'images shell injection',
    {images: 'app; rm -rf /'},
    `Input 'images' has an invalid value "app; rm -rf /": line 1: a reference cannot contain spaces`
  ],
  [
    'images command substitution',
    {images: 'ok:1\n$(id)'},
    `Input 'images' has an invalid value "$(id)": line 2: "$(id)" is not a valid name component (lowercase letters, digits, and . _ __ - between them)`
  ],
  [
    'images uppercase',
    {images: 'MyApp:1'},
    `Input 'images' has an invalid value "MyApp:1": line 1: "MyApp" is not a valid name component (lowercase letters, digits, and . _ __ - between them)`
  ],
  [
    'images digest without target',
    {images: `app@sha256:${'a'.repeat(64)}`},
    `Input 'images' has an invalid value "app@sha256:${'a'.repeat(64)}": line 1: a source given by digest needs an explicit '=> target:tag'`
  ],
  [
    'images bad tag',
    {images: 'app:-bad'},
    `Input 'images' has an invalid value "app:-bad": line 1: tag "-bad" is invalid (letters, digits, _ . -, not starting with . or -, at most 128)`
  ],
  [
    'images two sources one target',
    {images: 'a:1 => app:1\nb:1 => app:1'},
    `Input 'images' has an invalid value "b:1 => app:1": line 2: target localhost:5000/app:1 is also the target of a:1 on line 1`
  ],
  [
    'tags without images',
    {tags: 'v1'},
    `Input 'tags' has an invalid value "v1": tags are added to the images in images, which is empty`
  ],
  [
    'tags form',
    {images: 'app', tags: 'v1\nbad tag!'},
    `Input 'tags' has an invalid value "bad tag!": line 2: not a tag (letters, digits, _ . -, not starting with . or -, at most 128)`
  ],
  [
    'push-concurrency range',
    {'push-concurrency': '17'},
    `Input 'push-concurrency' has an invalid value "17": use a whole number from 1 to 16`
  ],
  [
    'push-concurrency word',
    {'push-concurrency': 'two'},
    `Input 'push-concurrency' has an invalid value "two": use a whole number from 1 to 16`
  ],
  [
    'push-retries range',
    {'push-retries': '11'},
    `Input 'push-retries' has an invalid value "11": use a whole number from 0 to 10`
  ],
  [
    'push-compression word',
    {'push-compression': 'zstd'},
    `Input 'push-compression' has an invalid value "zstd": use one of auto, gzip, none`
  ],
  [
    'push-compression none with docker push',
    {'push-compression': 'none', 'push-method': 'docker'},
    `Input 'push-compression' has an invalid value "none": docker push always compresses: use push-method auto for uncompressed layers`
  ],
  [
    'gpus word',
    {gpus: 'two'},
    `Input 'gpus' has an invalid value "two": two is neither a GPU UUID nor an index: use all, a count from 1 to 64, or a list of GPU UUIDs (GPU-…) or indexes (0,1; one index alone: 2,)`
  ],
  [
    'gpus zero',
    {gpus: '0'},
    `Input 'gpus' has an invalid value "0": use all, a count from 1 to 64, or a list of GPU UUIDs (GPU-…) or indexes (0,1; one index alone: 2,)`
  ],
  [
    'gpus MIG device',
    {gpus: 'MIG-4f2e1d3c-0000-5000-8000-000000000000'},
    `Input 'gpus' has an invalid value "MIG-4f2e1d3c-0000-5000-8000-000000000000": MIG-4f2e1d3c-0000-5000-8000-000000000000: MIG devices are not leased; use all, a count from 1 to 64, or a list of GPU UUIDs (GPU-…) or indexes (0,1; one index alone: 2,)`
  ],
  [
    'gpus named twice',
    {gpus: '0,1\n0'},
    `Input 'gpus' has an invalid value "0,1\\n0": 0 is named twice`
  ],
  [
    'gpus shell',
    {gpus: '0; reboot'},
    `Input 'gpus' has an invalid value "0; reboot": 0; reboot is neither a GPU UUID nor an index: use all, a count from 1 to 64, or a list of GPU UUIDs (GPU-…) or indexes (0,1; one index alone: 2,)`
  ],
  [
    'gpu-wait range',
    {'gpu-wait': '-1'},
    `Input 'gpu-wait' has an invalid value "-1": use a whole number from 0 to 86400`
  ],
  [
    'min-free-space ambiguous unit',
    {'min-free-space': '20G'},
    `Input 'min-free-space' has an invalid value "20G": use a size such as 20GB or 500MiB (KB/MB/GB/TB: powers of 1000; KiB/MiB/GiB/TiB: of 1024)`
  ],
  [
    'min-free-space bare number',
    {'min-free-space': '20000'},
    `Input 'min-free-space' has an invalid value "20000": use a size such as 20GB or 500MiB (KB/MB/GB/TB: powers of 1000; KiB/MiB/GiB/TiB: of 1024)`
  ],
  [
    'min-free-space zero',
    {'min-free-space': '0GB'},
    `Input 'min-free-space' has an invalid value "0GB": use a size such as 20GB or 500MiB (KB/MB/GB/TB: powers of 1000; KiB/MiB/GiB/TiB: of 1024)`
  ],
  [
    'prune-age unit',
    {'prune-age': '3 days'},
    `Input 'prune-age' has an invalid value "3 days": use an age such as 72h, 7d, 1h30m or 90s (s, m, h, d, w), or 0`
  ],
  [
    'prune-age empty',
    {'prune-age': ''},
    `Input 'prune-age' has an invalid value "": use an age such as 72h, 7d, 1h30m or 90s (s, m, h, d, w), or 0`
  ],
  [
    'build-cache-cap unit',
    {'build-cache-cap': '10'},
    `Input 'build-cache-cap' has an invalid value "10": use a size such as 10GB or 2GiB, or 0 (no build cache kept)`
  ],
  [
    'build-cache-cap negative',
    {'build-cache-cap': '-1GB'},
    `Input 'build-cache-cap' has an invalid value "-1GB": use a size such as 10GB or 2GiB, or 0 (no build cache kept)`
  ],
  [
    'keep-label form',
    {'keep-label': 'keep me'},
    `Input 'keep-label' has an invalid value "keep me": use a label key such as org.example.keep, or key=value`
  ],
  [
    'dry-run bool',
    {'dry-run': 'sure'},
    `Input 'dry-run' has an invalid value "sure": use true or false`
  ],
  ['summary bool', {summary: 'on'}, `Input 'summary' has an invalid value "on": use true or false`],
  [
    'cleanup enum',
    {cleanup: 'everything'},
    `Input 'cleanup' has an invalid value "everything": use one of none, registry, all`
  ],
  [
    'http-proxy scheme',
    {'http-proxy': 'socks5://proxy:1080'},
    `Input 'http-proxy' has an invalid value "socks5://proxy:1080": use the proxy as an http or https URL, e.g. http://proxy.example.com:3128`
  ],
  [
    'http-proxy without a scheme',
    {'http-proxy': 'proxy.corp:3128'},
    `Input 'http-proxy' has an invalid value "proxy.corp:3128": use the proxy as an http or https URL, e.g. http://proxy.example.com:3128`
  ],
  [
    'https-proxy path, credentials not echoed',
    {'https-proxy': 'http://ci:hunter2@proxy.corp:3128/pac'},
    `Input 'https-proxy' has an invalid value "http://proxy.corp:3128/pac": use the proxy URL alone, without a path, query or fragment`
  ],
  [
    'http-proxy quote',
    {'http-proxy': 'http://ci:a"b@proxy.corp:3128'},
    `Input 'http-proxy' has an invalid value "http://proxy.corp:3128": percent-encode spaces, quotes, backslashes, \` and $ in the URL`
  ],
  [
    'no-proxy entry',
    {'http-proxy': 'http://proxy:3128', 'no-proxy': '.corp\nbad host'},
    `Input 'no-proxy' has an invalid value "bad host": line 2: use host names, .domains, IP addresses or CIDR ranges (e.g. .corp.example.com, 10.0.0.0/8)`
  ],
  [
    'no-proxy alone',
    {'no-proxy': '.corp'},
    `Input 'no-proxy' has an invalid value ".corp": no-proxy lists exceptions to http-proxy and https-proxy: set one of them too`
  ],
  [
    'daemon-config proxies beside the proxy inputs',
    {
      'http-proxy': 'http://proxy:3128',
      'daemon-config': '{"proxies": {"http-proxy": "http://x:1"}}'
    },
    `Input 'daemon-config' has an invalid value "{\\"proxies\\":{\\"http-proxy\\":\\"http://x:1\\"}}": sets proxies while http-proxy or https-proxy is set: give proxies through those inputs only`
  ],
  [
    'registry-caches Docker Hub',
    {'registry-caches': 'nvcr.io\ndocker.io'},
    `Input 'registry-caches' has an invalid value "docker.io": line 2: Docker Hub is cached by registry-mirror (the only cache Docker applies to Hub pulls)`
  ],
  [
    'registry-caches Docker Hub URL',
    {'registry-caches': 'https://registry-1.docker.io'},
    `Input 'registry-caches' has an invalid value "https://registry-1.docker.io": line 1: Docker Hub is cached by registry-mirror (the only cache Docker applies to Hub pulls)`
  ],
  [
    'registry-caches bare name',
    {'registry-caches': 'myregistry'},
    `Input 'registry-caches' has an invalid value "myregistry": line 1: a bare host name would be read as a Docker Hub namespace: add a port (myhost:5000) or use a name with a dot`
  ],
  [
    'registry-caches path',
    {'registry-caches': 'https://artifactory.corp/api/docker/remote'},
    `Input 'registry-caches' has an invalid value "https://artifactory.corp/api/docker/remote": line 1: use the registry's root URL, without a path`
  ],
  [
    'registry-caches credentials in the URL',
    {'registry-caches': 'https://ci:tok@ghcr.io'},
    `Input 'registry-caches' has an invalid value "https://ci:tok@ghcr.io": line 1: give credentials in registry-cache-credentials, not in the URL`
  ],
  [
    'registry-caches scheme',
    {'registry-caches': 'ftp://ghcr.io'},
    `Input 'registry-caches' has an invalid value "ftp://ghcr.io": line 1: use a registry host such as nvcr.io, or an http or https URL`
  ],
  [
    'registry-caches repeated',
    {'registry-caches': 'ghcr.io, https://ghcr.io/'},
    `Input 'registry-caches' has an invalid value "https://ghcr.io": ghcr.io is listed twice`
  ],
  [
    'registry-cache-port clash with the mirror',
    {
      'registry-caches': 'nvcr.io, ghcr.io',
      'registry-mirror': 'true',
      'registry-cache-port': '5000'
    },
    `Input 'registry-cache-port' has an invalid value "5000": the 2 cache(s) take ports 5000 to 5001, which holds the registry's port 5000: choose another first port`
  ],
  [
    'registry-cache-port beyond 65535',
    {'registry-caches': 'nvcr.io, ghcr.io', 'registry-cache-port': '65535'},
    `Input 'registry-cache-port' has an invalid value "65535": the 2 cache(s) take ports 65535 to 65536, beyond 65535: choose another first port`
  ],
  [
    'registry-cache-credentials form',
    {'registry-caches': 'nvcr.io', 'registry-cache-credentials': 'nvcr.io $oauthtoken'},
    `Input 'registry-cache-credentials' has an invalid value "***": line 1: write upstream user:token (the upstream as registry-caches names it)`
  ],
  [
    'registry-cache-credentials unknown upstream',
    {'registry-caches': 'nvcr.io', 'registry-cache-credentials': 'ghcr.io ci:tok'},
    `Input 'registry-cache-credentials' has an invalid value "***": line 1: ghcr.io is not in registry-caches`
  ],
  [
    'registry-cache-credentials twice',
    {
      'registry-caches': 'nvcr.io',
      'registry-cache-credentials': 'nvcr.io a:1\n\nnvcr.io b:2'
    },
    `Input 'registry-cache-credentials' has an invalid value "***": line 3: nvcr.io has credentials twice`
  ]
]

describe('parseInputs reads the GPU lease and disk inputs', () => {
  const U = 'GPU-22b2c6ac-2d49-4863-197c-9c469071178a'
  it.each([
    ['', {kind: 'none'}],
    ['all', {kind: 'all'}],
    ['All', {kind: 'all'}],
    ['2', {kind: 'count', count: 2}],
    ['2,', {kind: 'list', gpus: [{index: 2}]}],
    ['0,1', {kind: 'list', gpus: [{index: 0}, {index: 1}]}],
    [`${U}\n# the other one\n3`, {kind: 'list', gpus: [{uuid: U}, {index: 3}]}]
  ])('gpus: %j', (gpus, request) => {
    expect(parseInputs(raw({gpus}), host).gpus).toEqual({gpus: request, gpuWait: 900})
  })

  it('reads sizes in powers of 1000 or 1024, ages in any unit, and a label or key=value', () => {
    const disk = (o: RawOverrides) => parseInputs(raw(o), host).disk
    expect(disk({})).toEqual({
      minFreeSpace: undefined,
      pruneAge: {seconds: 86_400, text: '24h'},
      buildCacheCap: 10e9,
      keepLabel: {key: 'org.docker-gpu-setup.keep'}
    })
    expect(disk({'build-cache-cap': '2GiB'}).buildCacheCap).toBe(2 * 2 ** 30)
    expect(disk({'build-cache-cap': '0'}).buildCacheCap).toBe(0)
    expect(disk({'build-cache-cap': '0GB'}).buildCacheCap).toBe(0)
    expect(disk({'min-free-space': '20GB'}).minFreeSpace).toBe(20e9)
    expect(disk({'min-free-space': '1.5 TB'}).minFreeSpace).toBe(1.5e12)
    expect(disk({'min-free-space': '500MiB'}).minFreeSpace).toBe(500 * 2 ** 20)
    expect(disk({'prune-age': '1h30m'}).pruneAge.seconds).toBe(5400)
    expect(disk({'prune-age': '7d'}).pruneAge.seconds).toBe(604_800)
    expect(disk({'prune-age': '0'}).pruneAge.seconds).toBe(0)
    expect(disk({'keep-label': 'team=ml'}).keepLabel).toEqual({key: 'team', value: 'ml'})
    expect(disk({'keep-label': ''}).keepLabel).toBeUndefined()
  })
})

describe('parseInputs reads pairs and contradictions', () => {
  it('keeps username and password together as one login', () => {
    expect(parseInputs(raw({username: 'ci', password: ' p w '}), host).push.login).toEqual({
      username: 'ci',
      password: ' p w '
    })
  })

  it('accepts what daemon-config sets when it agrees with the NVIDIA inputs, or they are off', () => {
    const agree =
      '{"default-runtime": "nvidia", "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}'
    expect(parseInputs(raw({'daemon-config': agree}), host).daemon.daemonConfig).toBeDefined()
    const other = '{"default-runtime": "runc", "runtimes": {"nvidia": {"path": "/opt/nv"}}}'
    expect(
      parseInputs(raw({'daemon-config': other, 'gpu-runtime': 'none'}), host).daemon.daemonConfig
    ).toBeDefined()
    expect(() =>
      parseInputs(raw({'daemon-config': other, 'nvidia-default-runtime': 'false'}), host)
    ).toThrow('contradicts other inputs: runtimes.nvidia.path')
  })

  it('reads cleanup without regard to case', () => {
    expect(parseInputs(raw({cleanup: 'None'}), host).run.cleanup).toBe('none')
    expect(parseInputs(raw({cleanup: 'Registry'}), host).run.cleanup).toBe('registry')
  })
})

describe('proxies and pull-through caches', () => {
  it('reads the proxies, and gives every phase the same list with this host added', () => {
    const inputs = parseInputs(
      raw({
        'http-proxy': 'http://ci:p%40ss@proxy.corp:3128/',
        'https-proxy': 'https://proxy.corp:3129',
        'no-proxy': '.corp, 10.0.0.0/8'
      }),
      host
    )
    expect(inputs.proxy).toEqual({
      http: 'http://ci:p%40ss@proxy.corp:3128',
      https: 'https://proxy.corp:3129',
      noProxy: ['.corp', '10.0.0.0/8']
    })
    const me = {
      names: ['gpu-01'],
      addresses: ['127.0.0.1', '172.17.0.1', '10.1.2.3'],
      fixedAddresses: ['127.0.0.1', '10.1.2.3']
    }
    const settings = phaseSettings(inputs, me)
    const all = ['.corp', '10.0.0.0/8', 'localhost', '127.0.0.0/8', '::1', 'gpu-01', '10.1.2.3']
    expect(settings.proxy.proxies?.noProxy).toEqual(all)
    for (const p of [settings.daemon, settings.registry, settings.push]) {
      expect(p.proxies).toEqual(settings.proxy.proxies)
    }
    expect(phaseSettings(parseInputs(raw(), host), me).proxy.proxies).toBeUndefined()
  })

  it('adds a local registry named by a host name of its own to no-proxy', () => {
    const inputs = parseInputs(
      raw({'http-proxy': 'http://p:1', registry: 'registry.lab:5000', 'start-registry': 'true'}),
      host
    )
    expect(
      phaseSettings(inputs, {names: ['gpu-01'], addresses: []}).proxy.proxies?.noProxy
    ).toEqual(['localhost', '127.0.0.0/8', '::1', 'gpu-01', 'registry.lab'])
  })

  it('tells the push whether this run runs the registry on this host', () => {
    const me = {names: ['gpu-01'], addresses: ['10.1.2.3']}
    const local = (r: Record<string, string>): boolean =>
      phaseSettings(parseInputs(raw({images: 'app', ...r}), host), me).push.registryLocal
    expect(local({registry: 'gpu-01:5000'})).toBe(true)
    expect(local({registry: 'gpu-01:5000', 'start-registry': 'false'})).toBe(false)
    expect(local({registry: 'registry.lab:5000'})).toBe(false)
  })

  it('reads registry-caches: hosts over https, URLs as given, ports in list order, credentials', () => {
    const inputs = parseInputs(
      raw({
        'registry-caches': 'nvcr.io\n# internal\nhttp://10.0.0.5:5000/, ghcr.io',
        'registry-cache-credentials':
          'nvcr.io $oauthtoken:nvapi-k3y with space\n\nhttp://10.0.0.5:5000 ci:tok'
      }),
      host
    )
    expect(inputs.registry.registryCaches).toEqual([
      {
        upstream: 'nvcr.io',
        remoteUrl: 'https://nvcr.io',
        host: 'nvcr.io',
        slug: 'nvcr.io',
        port: 5002,
        credentials: {username: '$oauthtoken', password: 'nvapi-k3y with space'}
      },
      {
        upstream: 'http://10.0.0.5:5000',
        remoteUrl: 'http://10.0.0.5:5000',
        host: '10.0.0.5:5000',
        slug: '10.0.0.5-5000',
        port: 5003,
        credentials: {username: 'ci', password: 'tok'}
      },
      {
        upstream: 'ghcr.io',
        remoteUrl: 'https://ghcr.io',
        host: 'ghcr.io',
        slug: 'ghcr.io',
        port: 5004,
        credentials: undefined
      }
    ])
  })

  it('masks every secret: passwords, htpasswd and cache tokens, proxy credentials', () => {
    expect(
      secretValues(
        raw({
          password: 'pw',
          'registry-htpasswd': 'ci:ht',
          'registry-cache-credentials': 'nvcr.io $oauthtoken:nvapi-x',
          'http-proxy': 'http://ci:p%40ss@proxy:3128',
          'https-proxy': 'http://tok3n@proxy:3128'
        })
      )
    ).toEqual(['pw', 'ht', 'nvapi-x', 'p%40ss', 'p@ss', 'tok3n'])
  })
})

describe('parseInputs rejects bad input with one exact line', () => {
  it.each(BAD)('%s', (_name, overrides, message) => {
    expect(() => parseInputs(raw(overrides), host)).toThrow(
      new Error(message) // toThrow with an Error compares the whole message
    )
    expect(message).not.toContain('\n')
  })

  it('never echoes a password', () => {
    let message = ''
    try {
      parseInputs(raw({'registry-htpasswd': 'ci:topsecret\nnocolon'}), host)
    } catch (e) {
      message = (e as Error).message
    }
    expect(message).toContain("'registry-htpasswd'")
    expect(message).not.toContain('topsecret')
    expect(() =>
      parseInputs(
        raw({'registry-caches': 'nvcr.io', 'registry-cache-credentials': 'nvcr.io nvapi-secret'}),
        host
      )
    ).toThrow(/^(?!.*nvapi-secret)/)
  })
})

describe('action.yml and INPUT_DEFAULTS', () => {
  const action = parse(readFileSync('action.yml', 'utf8')) as {
    inputs: Record<string, {default?: string; description: string}>
    outputs: Record<string, {description: string}>
    runs: Record<string, string>
  }

  it('declares the same inputs with the same defaults', () => {
    const fromYaml = Object.fromEntries(
      Object.entries(action.inputs).map(([k, v]) => [k, String(v.default ?? '')])
    )
    expect(fromYaml).toEqual(INPUT_DEFAULTS)
  })

  it('runs on node24 with a post step on the same bundle', () => {
    expect(action.runs).toEqual({using: 'node24', main: 'dist/index.js', post: 'dist/index.js'})
  })

  it('documents every input and output of each action.yml in docs/inputs.md, as generated', () => {
    const doc = readFileSync('docs/inputs.md', 'utf8')
    for (const file of [
      'action.yml',
      'push/action.yml',
      'registry/action.yml',
      'gpus/action.yml'
    ]) {
      expect(doc).toContain(`<!-- inputs-table:begin ${file} `)
    }
    for (const name of [...Object.keys(action.inputs), ...Object.keys(action.outputs)]) {
      expect(doc).toContain(`| \`${name}\` |`)
    }
    // Stale tables: run `node scripts/inputs-table.mjs`.
    expect(withTables(doc, file => readFileSync(file, 'utf8'))).toBe(doc)
  })

  it('gives every input a group and a type (one line each in scripts/inputs-table.mjs)', () => {
    const missing = Object.keys(action.inputs).filter(name => !(name in INPUT_META))
    expect(missing).toEqual([])
    for (const [group] of Object.values(INPUT_META)) expect(GROUPS[group]).toBeDefined()
  })
})
