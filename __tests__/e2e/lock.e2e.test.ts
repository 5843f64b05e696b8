/**
 * The host lock folder against another local user, in a disposable bookworm host with systemd.
 * `nobody` plants what it could plant in the world-writable /run/lock: the folder older releases
 * used, a live owner in it, and symlinks to a root-only file at every temporary name those
 * releases would have written for the next few thousand pids. A stand-in nvidia-smi answers for
 * two GPUs, so the runs take leases too (as root, and as a runner user through sudo).
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {Box, IN_BOX, RUNNER_USER} from './bed/box.js'
import {BOOT_TIMEOUT} from './bed/prepare.js'
import {errorLine, expectSuccess, parseOutputFile, waitFor, type BackgroundRun} from './harness.js'

const LOCK = '/run/docker-gpu-setup'
const OLD = '/run/lock/docker-gpu-setup'
const TARGET = '/etc/dgs-target'
const uuid = (n: number): string => `GPU-${n}0000000-0000-4000-8000-00000000000${n}`
const base = {
  'docker-source': 'distro',
  'gpu-runtime': 'none',
  'start-registry': 'false',
  gpus: '1',
  'gpu-wait': '30'
}
let box: Box

/** One job under a stand-in Runner.Worker: its main step, then (on post()) its post step. */
class Job {
  readonly dir: string
  readonly run: BackgroundRun
  constructor(name: string, user?: string) {
    this.dir = `/tmp/jobs/${name}`
    this.run = box.start(base, {
      user,
      wrap: ['/usr/local/bin/Runner.Worker', this.dir],
      env: {GITHUB_JOB: name, GITHUB_REPOSITORY: 'org/repo', GITHUB_RUN_ID: '7'}
    })
  }

  async main(): Promise<{rc: number; outputs: Record<string, string>}> {
    await waitFor(() => box.exists(`${this.dir}/main.rc`), 120_000, 'the main step to end')
    return {
      rc: Number(box.read(`${this.dir}/main.rc`)),
      outputs: parseOutputFile(box.read(`${this.dir}/main.output`) ?? '')
    }
  }

  async post(): Promise<number> {
    box.sh(`touch ${this.dir}/post`)
    await this.run.done
    return Number(box.read(`${this.dir}/post.rc`))
  }
}

const asNobody = (script: string): string =>
  box.sh(`su nobody -s /bin/sh -c ${JSON.stringify(script).replace(/\$/g, '\\$')}`)

beforeAll(() => {
  box = Box.start({suite: 'bookworm', state: 'engine'})
  box.sh(
    `install -m 0755 ${IN_BOX.scripts}/nvidia-smi-standin.sh /usr/local/bin/nvidia-smi && ` +
      `install -m 0755 ${IN_BOX.scripts}/runner-worker.sh /usr/local/bin/Runner.Worker && ` +
      'mkdir -m 1777 /tmp/jobs'
  )
  box.write(
    '/etc/nvidia-smi-standin/gpus.csv',
    [0, 1].map(i => `${i}, ${uuid(i)}, NVIDIA H100 80GB HBM3, 0, 81559`).join('\n') + '\n'
  )
  box.write('/etc/nvidia-smi-standin/apps.csv', '')
}, BOOT_TIMEOUT)
afterAll(() => box?.remove())

describe('a folder planted by another local user at the old path', () => {
  it('neither redirects a write nor blocks a run, as root or through sudo', async () => {
    box.sh(`printf 'secret\\n' > ${TARGET} && chmod 0600 ${TARGET}`)
    // A process of nobody's own holds the planted locks: alive for as long as the test runs.
    const holder = box
      .sh("su nobody -s /bin/sh -c 'setsid sleep 600 >/dev/null 2>&1 < /dev/null & echo $!'")
      .trim()
    const next = Number(box.read('/proc/sys/kernel/ns_last_pid'))
    // One process plants them all (a shell loop would use up the very pids it plants for).
    const names = ['owner', 'gpus.lock', `${uuid(0)}.lease`, `${uuid(1)}.lease`]
    asNobody(
      `mkdir -m 0777 ${OLD} && cd ${OLD} && echo ${holder} > owner && echo ${holder} > gpus.lock && ` +
        `perl -e 'for $p (${next}..${next + 4000}) { symlink "${TARGET}", ".$_.$p.tmp" for qw(${names.join(' ')}) }'`
    )
    expect(box.sh(`ls -A ${OLD} | wc -l`).trim()).toBe(String(2 + 4 * 4001))
    const planted = box.sh(`ls -A ${OLD} | sort | sha256sum`)
    try {
      const jobs = [new Job('root-job'), new Job('sudo-job', RUNNER_USER)]
      const mains = [await jobs[0].main(), await jobs[1].main()]
      for (const m of mains) expect(m.rc).toBe(0)
      expect(mains.map(m => m.outputs['gpu-indexes']).sort()).toEqual(['0', '1'])
      // The root-only file behind the planted names is as it was: content, mode, owner.
      expect(box.read(TARGET)).toBe('secret\n')
      expect(box.sh(`stat -c '%U %a' ${TARGET}`).trim()).toBe('root 600')
      expect(box.sh(`ls -A ${OLD} | sort | sha256sum`)).toBe(planted)
      // The locks are in root's own folder: 0755, a real folder.
      expect(box.sh(`stat -c '%U %a %F' ${LOCK}`).trim()).toBe('root 755 directory')
      expect(
        box
          .sh(`ls ${LOCK}`)
          .split('\n')
          .filter(f => f.endsWith('.lease'))
      ).toHaveLength(2)
      for (const j of jobs) expect(await j.post()).toBe(0)
      // Released, and the folder stays (empty of leases) for the next run.
      expect(
        box
          .sh(`ls -A ${LOCK}`)
          .split('\n')
          .filter(f => f.endsWith('.lease'))
      ).toEqual([])
      expect(box.sh(`stat -c '%U %a %F' ${LOCK}`).trim()).toBe('root 755 directory')
    } finally {
      box.sh(`kill ${holder}`)
    }
  }, 300_000)

  it('a lock folder others can write is refused, naming the fix, and the fix works', () => {
    const plain = {'docker-source': 'distro', 'gpu-runtime': 'none', 'start-registry': 'false'}
    box.sh(`chmod 0777 ${LOCK}`)
    const refused = box.run(plain)
    expect(refused.code).toBe(1)
    expect(errorLine(refused)).toContain(
      `${LOCK} must be a folder owned by root and writable by no one else, but is: directory, owner uid 0, mode 777.`
    )
    expect(errorLine(refused)).toContain(`sudo rm -rf ${LOCK}`)
    box.sh(`rm -rf ${LOCK}`)
    expectSuccess(box.run(plain))
    expect(box.sh(`stat -c '%U %a %F' ${LOCK}`).trim()).toBe('root 755 directory')
  }, 120_000)
})
