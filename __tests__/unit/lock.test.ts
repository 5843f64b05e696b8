import {mkdtempSync, readFileSync, readdirSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import * as path from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from '@jest/globals'
import {acquireFileLock, createExclusive, removeIfOurs, takeOver} from '../../src/system/lock.js'
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
      path.join(locks, `.b.lease.${process.pid}.tmp`),
      file
    ])
    const exists = new FakeRunner([[['sh'], {exitCode: 3}]], false)
    expect(await createExclusive(exists, file, 'x\n', dir)).toBe(false)
  })
})

describe('removeIfOurs', () => {
  it('removes only a file that is still ours, then the folder once it is empty', async () => {
    const a = path.join(locks, 'a.lease')
    const b = path.join(locks, 'b.lease')
    await createExclusive(root, a, 'me\n', dir)
    await createExclusive(root, b, 'someone\n', dir)
    expect(await removeIfOurs(root, b, t => t === 'me\n')).toBe('other')
    expect(await removeIfOurs(root, a, t => t === 'me\n')).toBe('removed')
    expect(readdirSync(locks)).toEqual(['b.lease'])
    expect(await removeIfOurs(root, a, () => true)).toBe('gone')
    expect(await removeIfOurs(root, b, () => true)).toBe('removed')
    expect(readdirSync(dir)).toEqual([])
  })
})

describe('takeOver', () => {
  it('moves the stale file away; a file that is not the stale one any more is put back', async () => {
    const file = path.join(locks, 'owner')
    await createExclusive(root, file, `${DEAD}\n`, dir)
    await takeOver(root, file, `${DEAD}\n`)
    expect(readdirSync(locks)).toEqual([])
    // Another run took it over and made it its own before this one moved it: it goes back.
    await createExclusive(root, file, `${process.pid}\n`, dir)
    await takeOver(root, file, `${DEAD}\n`)
    expect(readFileSync(file, 'utf8')).toBe(`${process.pid}\n`)
    expect(readdirSync(locks)).toEqual(['owner'])
  })
})

describe('acquireFileLock', () => {
  it('takes a free lock, and releases it leaving no folder', async () => {
    const file = path.join(locks, 'owner')
    const lock = await acquireFileLock(root, file, dir, () => undefined, wait)
    expect(readFileSync(file, 'utf8')).toBe(`${process.pid}\n`)
    await lock.release()
    expect(readdirSync(dir)).toEqual([])
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
