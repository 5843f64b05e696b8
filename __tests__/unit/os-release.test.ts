import {readFileSync} from 'node:fs'
import {describe, expect, it} from '@jest/globals'
import {defaultDockerAptUrl, parseOsRelease} from '../../src/system/os-release.js'

describe('os-release', () => {
  it.each([
    ['debian-12', 'debian', 'bookworm', 'https://download.docker.com/linux/debian'],
    ['ubuntu-24.04', 'ubuntu', 'noble', 'https://download.docker.com/linux/ubuntu'],
    ['linuxmint-21', 'linuxmint', 'jammy', 'https://download.docker.com/linux/ubuntu'],
    ['fedora-40', 'fedora', '', undefined]
  ])('%s', (file, id, codename, url) => {
    const os = parseOsRelease(readFileSync(`__fixtures__/os-release/${file}`, 'utf8'))
    expect(os.id).toBe(id)
    expect(os.codename).toBe(codename)
    expect(defaultDockerAptUrl(os)).toBe(url)
  })
})
