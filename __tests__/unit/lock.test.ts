import {spawnSync} from 'node:child_process'
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync
} from 'node:fs'
import {tmpdir} from 'node:os'
import * as path from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from '@jest/globals'
import {
  acquireFileLock,
  createExclusive,
  lockDirProblem,
  lockText,
  removeIfOurs,
  takeOver
} from '../../src/system/lock.js'
import {processIdentity} from '../../src/system/process.js'
import {FakeRunner} from './fake-runner.js'

// The locking files of the real lock folder, in a folder of the test's own (as root: plain fs).
let dir: string
let locks: string
const root = new FakeRunner([], true)
const wait = {what: 'the test lock', timeoutMs: 2000, pollMs: 10}

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'dgs-lock-'))
  locks = path.join(dir, 'locks')
})
afterEach(() => rmSync(dir, {recursive: true, force: true}))

/** A pid no process has: a shell's that has exited is hard to get here, so the largest possible. */
const DEAD = 4_194_303

describe('createExclusive', () => {
  it('creates the file whole, once; the second creator is told it exists', async () => {
    const file = path.join(locks, 'a.lease')
    expect(await createExclusive(root, file, 'first\n', dir)).toBe(true)
    expect(await createExclusive(root, file, 'second\n', dir)).toBe(false)
    expect(readFileSync(file, 'utf8')).toBe('first\n')
    // No temporary file is left beside it.
    expect(readdirSync(locks)).toEqual(['a.lease'])
  })

  it('without root, runs one fixed script under sudo with the paths as arguments', async () => {
    const sudo = new FakeRunner([], false)
    const file = path.join(locks, 'b.lease')
    expect(await createExclusive(sudo, file, 'x\n', dir)).toBe(true)
    const [call] = sudo.calls
    expect(call.options).toEqual({root: true, allowFailure: true})
    expect(call.argv.slice(0, 2)).toEqual(['sh', '-c'])
    expect(call.argv.slice(3)).toEqual([
      'sh',
      path.join(dir, `staged-${process.pid}-b.lease`),
      file
    ])
    const exists = new FakeRunner([[['sh'], {exitCode: 3}]], false)
    expect(await createExclusive(exists, file, 'x\n', dir)).toBe(false)
  })
})

/**
 * The sudo path's script run for real, as this user (what sudo would run as root): a runner that
 * is not root and executes `sh -c SCRIPT` itself, so the script's checks meet real folders.
 */
const shell = new (class extends FakeRunner {
  override run(argv: readonly string[]) {
    const r = spawnSync(argv[0], argv.slice(1), {encoding: 'utf8'})
    return Promise.resolve({exitCode: r.status ?? 1, stdout: r.stdout, stderr: r.stderr})
  }
})([], false)

describe('a lock folder another user could have planted', () => {
  it('a symlink at a temporary name the old code used redirects no write', async () => {
    const victim = path.join(dir, 'victim')
    writeFileSync(victim, 'secret\n', {mode: 0o600})
    mkdirSync(locks, {mode: 0o755})
    const file = path.join(locks, 'owner')
    symlinkSync(victim, path.join(locks, `.owner.${process.pid}.tmp`))
    for (const runner of [root, shell]) {
      expect(await createExclusive(runner, file, `${process.pid}\n`, dir)).toBe(true)
      expect(readFileSync(victim, 'utf8')).toBe('secret\n')
      expect(statSync(victim).mode & 0o777).toBe(0o600)
      rmSync(file)
    }
  })

  it('a folder others can write, or a symlink in its place, is refused and told how to fix', async () => {
    const file = path.join(locks, 'owner')
    const elsewhere = path.join(dir, 'elsewhere')
    mkdirSync(elsewhere, {mode: 0o755})
    symlinkSync(elsewhere, locks)
    for (const runner of [root, shell]) {
      await expect(createExclusive(runner, file, '1\n', dir)).rejects.toThrow(
        new RegExp(
          `^${locks} must be a folder owned by root and writable by no one else, but is: symbolic link, owner uid \\d+, mode 777\\. .*sudo rm -rf ${locks}`
        )
      )
    }
    expect(readdirSync(elsewhere)).toEqual([])
    rmSync(locks)
    mkdirSync(locks)
    chmodSync(locks, 0o1777)
    for (const runner of [root, shell]) {
      await expect(createExclusive(runner, file, '1\n', dir)).rejects.toThrow(
        `but is: directory, owner uid ${process.getuid?.()}, mode 1777.`
      )
    }
    expect(readdirSync(locks)).toEqual([])
  })

  it('lockDirProblem: only a real folder of the writing user, closed to others, passes', () => {
    const st = (kind: 'dir' | 'link' | 'file', uid: number, mode: number) => ({
      isDirectory: () => kind === 'dir',
      isSymbolicLink: () => kind === 'link',
      uid,
      mode
    })
    expect(lockDirProblem(st('dir', 0, 0o40755), 0)).toBeUndefined()
    expect(lockDirProblem(st('dir', 0, 0o40700), 0)).toBeUndefined()
    expect(lockDirProblem(st('dir', 65534, 0o40755), 0)).toBe(
      'directory, owner uid 65534, mode 755'
    )
    expect(lockDirProblem(st('dir', 0, 0o40775), 0)).toBe('directory, owner uid 0, mode 775')
    expect(lockDirProblem(st('dir', 0, 0o41777), 0)).toBe('directory, owner uid 0, mode 1777')
    expect(lockDirProblem(st('link', 0, 0o120777), 0)).toBe('symbolic link, owner uid 0, mode 777')
    expect(lockDirProblem(st('file', 0, 0o100644), 0)).toBe('not a folder, owner uid 0, mode 644')
  })
})

describe('removeIfOurs', () => {
  it('removes only a file that is still ours, and keeps the folder when it empties', async () => {
    const a = path.join(locks, 'a.lease')
    const b = path.join(locks, 'b.lease')
    await createExclusive(root, a, 'me\n', dir)
    await createExclusive(root, b, 'someone\n', dir)
    expect(await removeIfOurs(root, b, t => t === 'me\n')).toBe('other')
    expect(await removeIfOurs(root, a, t => t === 'me\n')).toBe('removed')
    expect(readdirSync(locks)).toEqual(['b.lease'])
    expect(await removeIfOurs(root, a, () => true)).toBe('gone')
    expect(await removeIfOurs(root, b, () => true)).toBe('removed')
    expect(readdirSync(locks)).toEqual([])
  })
})

describe('takeOver', () => {
  it('moves the stale file away; a file that is not the stale one any more is put back', async () => {
    const file = path.join(locks, 'owner')
    await createExclusive(root, file, `${DEAD}\n`, dir)
    await takeOver(root, file, `${DEAD}\n`)
    expect(readdirSync(locks)).toEqual([])
    // Another run took it over and made it its own before this one moved it: it goes back.
    await createExclusive(root, file, lockText(process.pid), dir)
    await takeOver(root, file, `${DEAD}\n`)
    expect(readFileSync(file, 'utf8')).toBe(lockText(process.pid))
    expect(readdirSync(locks)).toEqual(['owner'])
  })
})

describe('acquireFileLock', () => {
  it('takes a free lock naming its pid and start time, and releases it keeping the folder', async () => {
    const file = path.join(locks, 'owner')
    const lock = await acquireFileLock(root, file, dir, () => undefined, wait)
    const start = processIdentity(process.pid)?.start
    expect(start).toMatch(/^\d+$/)
    expect(readFileSync(file, 'utf8')).toBe(`${process.pid} ${start}\n`)
    await lock.release()
    expect(readdirSync(locks)).toEqual([])
    expect(statSync(locks).mode & 0o777).toBe(0o755)
  })

  it('takes over a lock whose owner is dead, or whose file names no pid, and says so', async () => {
    const file = path.join(locks, 'owner')
    const said: string[] = []
    for (const text of [`${DEAD}\n`, 'garbage']) {
      await createExclusive(root, file, text, dir)
      const lock = await acquireFileLock(root, file, dir, m => said.push(m), wait)
      await lock.release()
    }
    expect(said).toEqual([
      `Taking over the test lock: its owner (pid ${DEAD}) is gone.`,
      'Taking over the test lock: its owner (pid unknown) is gone.'
    ])
  })

  it('takes over at once a lock whose pid now belongs to a later process (another start time)', async () => {
    const file = path.join(locks, 'owner')
    // pid 1 runs, but it is not the process that wrote this file: its start time differs.
    await createExclusive(root, file, '1 1\n', dir)
    const said: string[] = []
    const lock = await acquireFileLock(root, file, dir, m => said.push(m), {
      ...wait,
      timeoutMs: 100
    })
    expect(said).toEqual(['Taking over the test lock: its owner (pid 1) is gone.'])
    await lock.release()
  })

  it('waits for a live owner, saying so once, and fails after the timeout naming the file', async () => {
    const file = path.join(locks, 'owner')
    // pid 1 is alive on every host.
    await createExclusive(root, file, '1\n', dir)
    const said: string[] = []
    await expect(
      acquireFileLock(root, file, dir, m => said.push(m), {...wait, timeoutMs: 100})
    ).rejects.toThrow(
      `Another docker-gpu-setup run (pid 1) has held the test lock for over 0 minutes; if no run is active, remove ${file}.`
    )
    expect(said).toEqual(['Waiting for the test lock, held by pid 1 (another run on this host).'])
  })

  it('lets one of two runs in at a time', async () => {
    const file = path.join(locks, 'owner')
    const first = await acquireFileLock(root, file, dir, () => undefined, wait)
    let second = false
    const waiting = acquireFileLock(root, file, dir, () => undefined, wait).then(l => {
      second = true
      return l
    })
    await new Promise(r => setTimeout(r, 50))
    // The same process is both owners here: the file is what keeps the second out.
    expect(second).toBe(false)
    await first.release()
    await (await waiting).release()
    expect(second).toBe(true)
  })
})
