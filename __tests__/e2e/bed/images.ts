/**
 * Builds what the boxes are made from, once per machine, named by a hash of the recipe:
 * - host images: a debootstrap root file system of each suite imported into the outer engine
 *   (`base`), and the same with Debian's engine installed (`engine`);
 * - fixtures, built inside a bookworm box so they depend on nothing installed here: signed apt
 *   repositories of STAND-IN Docker and NVIDIA packages, the .deb files of an air-gapped install,
 *   and a tar of the images the scenarios load into a box's engine (a registry built from Debian's
 *   docker-registry, tagged registry:3, and small busybox images).
 */
import {createHash} from 'node:crypto'
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync
} from 'node:fs'
import * as path from 'node:path'
import {sh} from './outer.js'
import {
  BASE_PACKAGES,
  BASE_SETUP,
  HOSTS,
  MIRROR,
  engineSetup,
  type HostRecipe,
  type Suite
} from './recipes.js'

const HERE = import.meta.dirname
const FIXTURE_SCRIPTS = path.resolve(HERE, '..', 'fixtures')
/** Machine-wide cache of built fixtures (host images live in the outer engine). */
export const CACHE = '/var/cache/docker-gpu-setup-e2e'
/** Label of everything the bed creates in the outer engine; the value is the creating process. */
export const LABEL = 'dgs-e2e.owner'

function hashOf(...parts: string[]): string {
  const h = createHash('sha256')
  for (const p of parts) h.update(p).update('\0')
  return h.digest('hex').slice(0, 12)
}

const RECIPE_HASH = hashOf(readFileSync(path.join(HERE, 'recipes.ts'), 'utf8'))

/** The tag of a host image: suite, state and the recipe's hash. */
export function hostTag(suite: Suite, state: 'base' | 'engine'): string {
  return `dgs-e2e-host/${suite}:${state}-${RECIPE_HASH}`
}

function imageExists(tag: string): boolean {
  return sh(`docker image inspect ${tag} >/dev/null 2>&1 && echo yes || true`).trim() === 'yes'
}

function log(message: string): void {
  process.stderr.write(`[e2e bed] ${message}\n`)
}

/** The options that make a box a host: systemd or an inner engine run, without --privileged. */
export function boxRunOptions(): string[] {
  // This machine may withhold capabilities (--privileged then fails): drop what the bounding set lacks.
  const withheld = withheldCapabilities()
  return [
    '--cap-add',
    'ALL',
    ...withheld.flatMap(c => ['--cap-drop', c]),
    '--security-opt',
    'seccomp=unconfined',
    '--security-opt',
    'apparmor=unconfined',
    '--security-opt',
    'systempaths=unconfined',
    '--cgroupns=host',
    '-v',
    '/sys/fs/cgroup:/sys/fs/cgroup:rw',
    '--tmpfs',
    '/run',
    '--tmpfs',
    '/run/lock'
  ]
}

/** Capability names in the kernel's bit order (capability.h). */
const CAPS = [
  'CHOWN',
  'DAC_OVERRIDE',
  'DAC_READ_SEARCH',
  'FOWNER',
  'FSETID',
  'KILL',
  'SETGID',
  'SETUID',
  'SETPCAP',
  'LINUX_IMMUTABLE',
  'NET_BIND_SERVICE',
  'NET_BROADCAST',
  'NET_ADMIN',
  'NET_RAW',
  'IPC_LOCK',
  'IPC_OWNER',
  'SYS_MODULE',
  'SYS_RAWIO',
  'SYS_CHROOT',
  'SYS_PTRACE',
  'SYS_PACCT',
  'SYS_ADMIN',
  'SYS_BOOT',
  'SYS_NICE',
  'SYS_RESOURCE',
  'SYS_TIME',
  'SYS_TTY_CONFIG',
  'MKNOD',
  'LEASE',
  'AUDIT_WRITE',
  'AUDIT_CONTROL',
  'SETFCAP',
  'MAC_OVERRIDE',
  'MAC_ADMIN',
  'SYSLOG',
  'WAKE_ALARM',
  'BLOCK_SUSPEND',
  'AUDIT_READ',
  'PERFMON',
  'BPF',
  'CHECKPOINT_RESTORE'
]

let withheldCache: string[] | undefined
/** Capabilities (by Docker's name) missing from this process's bounding set. */
export function withheldCapabilities(): string[] {
  if (withheldCache) return withheldCache
  const line = readFileSync('/proc/self/status', 'utf8')
    .split('\n')
    .find(l => l.startsWith('CapBnd:'))
  const mask = BigInt(`0x${(line ?? 'CapBnd: ffffffffffffffff').split(/\s+/)[1]}`)
  withheldCache = CAPS.filter((_, bit) => (mask & (1n << BigInt(bit))) === 0n)
  return withheldCache
}

/** debootstrap → chroot setup → docker import. */
function buildBase(recipe: HostRecipe, tag: string): void {
  const dir = `${CACHE}/rootfs-${recipe.suite}-${RECIPE_HASH}`
  rmSync(dir, {recursive: true, force: true})
  mkdirSync(CACHE, {recursive: true})
  const script =
    recipe.script && !existsSync(`/usr/share/debootstrap/scripts/${recipe.suite}`)
      ? ` /usr/share/debootstrap/scripts/${recipe.script}`
      : ''
  log(`debootstrap ${recipe.suite} (a few minutes, once per machine)`)
  sh(
    `debootstrap --variant=minbase --include=${BASE_PACKAGES.join(',')} ${recipe.suite} ${dir} ${MIRROR}${script} >${dir}.log 2>&1 || { tail -20 ${dir}.log; exit 1; }`
  )
  sh(`chroot ${dir} /bin/sh -s`, {input: BASE_SETUP})
  const cmd = recipe.init === 'systemd' ? '["/sbin/init"]' : '["sleep", "infinity"]'
  sh(`tar -C ${dir} -c . | docker import -c 'CMD ${cmd}' - ${tag} >/dev/null`)
  rmSync(dir, {recursive: true, force: true})
  rmSync(`${dir}.log`, {force: true})
}

/** A box of the base image, the engine installed inside, committed after a clean stop. */
function buildEngine(recipe: HostRecipe, base: string, tag: string): void {
  log(`installing Debian's engine into a ${recipe.suite} image`)
  const name = `dgs-e2e-build-${recipe.suite}-${process.pid}`
  const init = recipe.init === 'systemd' ? ['--stop-signal', 'SIGRTMIN+3'] : ['--init']
  const args = [
    'docker run -d',
    `--name ${name}`,
    `--label ${LABEL}=${process.pid}`,
    ...boxRunOptions(),
    ...init,
    `-v /var/lib/docker`,
    base
  ]
  sh(`docker rm -f -v ${name} >/dev/null 2>&1 || true; ${args.join(' ')} >/dev/null`)
  try {
    if (recipe.init === 'systemd') {
      sh(`docker exec ${name} timeout 60 systemctl is-system-running --wait >/dev/null || true`)
    }
    sh(`docker exec -i ${name} sh -s`, {input: engineSetup(recipe)})
    const version = sh(`docker exec ${name} dockerd --version`)
    const m = /version ([^,\s]+)/.exec(version)
    if (!m || !recipe.expect.docker.test(m[1])) {
      throw new Error(`${recipe.suite}: expected Docker ${recipe.expect.docker}, got ${version}`)
    }
    if (recipe.expect.systemd) {
      const systemd = sh(`docker exec ${name} systemctl --version`).split('\n')[0]
      if (!recipe.expect.systemd.test(systemd.replace(/^systemd /, ''))) {
        throw new Error(
          `${recipe.suite}: expected systemd ${recipe.expect.systemd}, got ${systemd}`
        )
      }
    }
    sh(`docker stop -t 30 ${name} >/dev/null`)
    const cmd = recipe.init === 'systemd' ? '["/sbin/init"]' : '["sleep", "infinity"]'
    sh(`docker commit -c 'CMD ${cmd}' ${name} ${tag} >/dev/null`)
  } finally {
    sh(`docker rm -f -v ${name} >/dev/null 2>&1 || true`)
  }
}

/** The tag of a host image in the given state, built first when this machine lacks it. */
export function ensureHostImage(suite: Suite, state: 'base' | 'engine'): string {
  const recipe = HOSTS[suite]
  const base = hostTag(suite, 'base')
  if (!imageExists(base)) buildBase(recipe, base)
  if (state === 'base') return base
  const engine = hostTag(suite, 'engine')
  if (!imageExists(engine)) buildEngine(recipe, base, engine)
  return engine
}

/** Host images of older recipes: removed, so the machine's disk does not fill with them. */
export function removeStaleHostImages(): void {
  const tags = sh(
    "docker images --format '{{.Repository}}:{{.Tag}}' | grep '^dgs-e2e-host/' || true"
  )
    .split('\n')
    .filter(Boolean)
  const stale = tags.filter(t => !t.endsWith(`-${RECIPE_HASH}`))
  if (stale.length > 0) sh(`docker rmi ${stale.join(' ')} >/dev/null 2>&1 || true`)
}

/** Paths of the built fixtures (inside a box they are under /dgs/fixtures). */
export interface Fixtures {
  dir: string
  /** Docker's repository layout (linux/debian), STAND-IN packages for bookworm. */
  dockerRepo: string
  /** NVIDIA's flat repository (stable/deb) and key, STAND-IN toolkit; also offline/ and legacy/. */
  nvidia: string
  /** Every .deb an air-gapped bookworm host needs for docker.io (full), and docker.io alone (partial). */
  offlineBookworm: string
  /** `docker save` of registry:3 (built here) and the busybox test images. */
  imagesTar: string
  /** `docker save` of registry:3 alone (registry-image-archive). */
  registryTar: string
  /** A self-signed certificate and key for localhost (tls/tls.crt, tls/tls.key). */
  tls: string
}

const FIXTURE_SCRIPT = `
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# What apt would install for docker.io on a bare bookworm host, before anything else is installed.
mkdir -p /out/offline-bookworm/full /out/offline-bookworm/partial
cd /out/offline-bookworm/full
apt-get download -q $(apt-get install -s -q docker.io | awk '/^Inst / {print $2}') >/dev/null 2>&1
cp docker.io_*.deb ../partial/
apt-get install -y -q --no-install-recommends equivs apt-utils gnupg dpkg-dev docker-registry \\
  busybox-static python3 >/dev/null 2>&1
bash /src/build-apt-repo.sh /out/docker-repo bookworm >/dev/null 2>&1
bash /src/build-nvidia-repo.sh /out/nvidia >/dev/null 2>&1
# A certificate for the TLS registry scenarios (localhost and 127.0.0.1), valid for years.
apt-get install -y -q --no-install-recommends openssl >/dev/null 2>&1
mkdir -p /out/tls
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=localhost \\
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout /out/tls/tls.key -out /out/tls/tls.crt 2>/dev/null
mkdir -p /out/payload
cp /usr/bin/docker-registry /out/payload/registry
cp /bin/busybox /out/payload/busybox
cp -L /lib/x86_64-linux-gnu/libc.so.6 /lib64/ld-linux-x86-64.so.2 /out/payload/
`

/** The images every scenario can load: the registry and small, distinct busybox images. */
export const TEST_IMAGES = [
  'registry:3',
  'dgs-e2e/busybox:latest',
  'dgs-e2e/app1:1',
  'dgs-e2e/app2:1',
  'dgs-e2e/app3:1'
]

function buildImage(dir: string, tag: string, dockerfile: string): void {
  writeFileSync(path.join(dir, 'Dockerfile'), dockerfile)
  sh(`DOCKER_BUILDKIT=0 docker build -q -t ${tag} ${dir} >/dev/null 2>&1`)
}

/** Builds the test images from the payload on the outer engine and saves them into one tar. */
function buildImagesTar(payload: string, tar: string): void {
  writeFileSync(
    path.join(payload, 'config.yml'),
    'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n  delete:\n    enabled: true\nhttp:\n  addr: :5000\n'
  )
  buildImage(
    payload,
    'registry:3',
    [
      'FROM scratch',
      'COPY registry /bin/registry',
      'COPY libc.so.6 /lib/x86_64-linux-gnu/libc.so.6',
      'COPY ld-linux-x86-64.so.2 /lib64/ld-linux-x86-64.so.2',
      'COPY config.yml /etc/docker/registry/config.yml',
      'VOLUME /var/lib/registry',
      'EXPOSE 5000',
      'ENTRYPOINT ["/bin/registry"]',
      'CMD ["serve", "/etc/docker/registry/config.yml"]',
      ''
    ].join('\n')
  )
  for (const tag of TEST_IMAGES.slice(1)) {
    const marker = tag === 'dgs-e2e/busybox:latest' ? 'busybox' : tag.split('/')[1].split(':')[0]
    writeFileSync(path.join(payload, 'marker'), `${marker}\n`)
    buildImage(
      payload,
      tag,
      'FROM scratch\nCOPY busybox /bin/busybox\nCOPY marker /marker\nCMD ["/bin/busybox", "cat", "/marker"]\n'
    )
  }
  sh(`docker save -o ${tar} ${TEST_IMAGES.join(' ')}`)
  // What an air-gapped host gets for registry-image-archive: the registry image alone.
  sh(`docker save -o ${path.dirname(tar)}/registry.tar registry:3`)
  // The outer engine keeps nothing the tests made (a registry:3 here would mislead a person).
  sh(`docker rmi ${TEST_IMAGES.join(' ')} >/dev/null 2>&1 || true`)
}

const DAY_MS = 24 * 3600_000

/** When a fixture folder was last used (its mtime, set on every use); now when it is unreadable. */
function lastUse(dir: string): number {
  try {
    return statSync(dir).mtimeMs
  } catch {
    return Date.now()
  }
}

/** Builds the fixtures in a bookworm box (network on), once per machine. */
export function ensureFixtures(): Fixtures {
  const scripts = ['lib.sh', 'build-apt-repo.sh', 'build-nvidia-repo.sh'].map(f =>
    readFileSync(path.join(FIXTURE_SCRIPTS, f), 'utf8')
  )
  // This file's own text, not a function's: compilers (ts-jest, Node's type stripping) print it differently.
  const hash = hashOf(RECIPE_HASH, readFileSync(path.join(HERE, 'images.ts'), 'utf8'), ...scripts)
  const dir = `${CACHE}/fixtures-${hash}`
  const fixtures: Fixtures = {
    dir,
    dockerRepo: `${dir}/docker-repo`,
    nvidia: `${dir}/nvidia`,
    offlineBookworm: `${dir}/offline-bookworm`,
    imagesTar: `${dir}/images.tar`,
    registryTar: `${dir}/registry.tar`,
    tls: `${dir}/tls`
  }
  // Fixtures of older recipes (and builds an interrupted run left): removed once no run has used
  // them for a day, so the machine's disk does not fill with them, while two checkouts of different
  // recipes on one machine do not remove each other's fixtures on every run.
  for (const name of readdirSync(CACHE)) {
    const other = `${CACHE}/${name}`
    if (name.startsWith('fixtures-') && other !== dir && Date.now() - lastUse(other) > DAY_MS) {
      rmSync(other, {recursive: true, force: true})
    }
  }
  if (existsSync(`${dir}/.complete`)) {
    utimesSync(dir, new Date(), new Date())
    return fixtures
  }
  log('building fixtures (stand-in repositories, offline .debs, test images), once per machine')
  const tmp = `${dir}.tmp-${process.pid}`
  rmSync(tmp, {recursive: true, force: true})
  mkdirSync(tmp, {recursive: true})
  const name = `dgs-e2e-fixtures-${process.pid}`
  const base = ensureHostImage('bookworm', 'base')
  try {
    sh(
      `docker run --rm -i --name ${name} --label ${LABEL}=${process.pid} -v ${tmp}:/out -v ${FIXTURE_SCRIPTS}:/src:ro ${base} sh -s`,
      {input: FIXTURE_SCRIPT}
    )
    buildImagesTar(`${tmp}/payload`, `${tmp}/images.tar`)
    rmSync(`${tmp}/payload`, {recursive: true, force: true})
    writeFileSync(`${tmp}/.complete`, new Date().toISOString())
    rmSync(dir, {recursive: true, force: true})
    renameSync(tmp, dir)
  } finally {
    rmSync(tmp, {recursive: true, force: true})
  }
  return fixtures
}
