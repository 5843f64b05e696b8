/** A Docker client config written in a user's folder: its mode kept, closed when it holds a secret. */
import {describe, expect, it} from '@jest/globals'
import {
  lstatSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  statSync,
  symlinkSync,
  writeFileSync
} from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {writeOwnedFile} from '../../src/system/files.js'

function config(mode: number): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dgs-owned-'))
  const file = path.join(dir, 'config.json')
  writeFileSync(file, '{}\n', {mode})
  return file
}

describe('writeOwnedFile', () => {
  it("keeps the file's own mode for text without a secret", async () => {
    const file = config(0o644)
    await writeOwnedFile(file, '{"a": 1}\n')
    expect(statSync(file).mode & 0o777).toBe(0o644)
    expect(readFileSync(file, 'utf8')).toBe('{"a": 1}\n')
  })

  it('closes a readable file to its owner when the text holds a secret (a proxy password)', async () => {
    const file = config(0o644)
    await writeOwnedFile(
      file,
      '{"proxies": {"default": {"httpProxy": "http://u:pw@p:3128"}}}\n',
      0o600,
      true
    )
    expect(statSync(file).mode & 0o777).toBe(0o600)
    // Nothing but the file is left in the folder: the temporary name was renamed over it.
    expect(readdirSync(path.dirname(file))).toEqual(['config.json'])
  })
})

describe('writeOwnedFile over a planted link', () => {
  it('replaces the link with a file of its own mode and leaves the target alone', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dgs-owned-'))
    const target = path.join(mkdtempSync(path.join(os.tmpdir(), 'dgs-target-')), 'shadow')
    writeFileSync(target, 'root:x:0:0\n', {mode: 0o640})
    const file = path.join(dir, 'config.json')
    symlinkSync(target, file)
    await writeOwnedFile(file, '{}\n')
    expect(lstatSync(file).isFile()).toBe(true)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(readFileSync(target, 'utf8')).toBe('root:x:0:0\n')
    expect(statSync(target).mode & 0o777).toBe(0o640)
  })
})
