import {describe, expect, it} from '@jest/globals'
import {
  formatReference,
  isLoopbackHost,
  parseReference,
  parseRegistryAddress
} from '../../src/docker/reference.js'

const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`

describe('parseReference', () => {
  it.each([
    ['ubuntu', {path: 'ubuntu'}],
    ['ubuntu:22.04', {path: 'ubuntu', tag: '22.04'}],
    ['library/ubuntu', {path: 'library/ubuntu'}],
    ['ghcr.io/org/app:1', {domain: 'ghcr.io', path: 'org/app', tag: '1'}],
    ['localhost:5000/app', {domain: 'localhost:5000', path: 'app'}],
    ['localhost/app:v_1.2-3', {domain: 'localhost', path: 'app', tag: 'v_1.2-3'}],
    ['[::1]:5000/team/app:2', {domain: '[::1]:5000', path: 'team/app', tag: '2'}],
    ['10.0.0.1:5000/a__b/c-d.e', {domain: '10.0.0.1:5000', path: 'a__b/c-d.e'}],
    [`app@${DIGEST}`, {path: 'app', digest: DIGEST}],
    [`app:1@${DIGEST}`, {path: 'app', tag: '1', digest: DIGEST}],
    ['Registry.Example.com/app', {domain: 'Registry.Example.com', path: 'app'}]
  ])('%s', (text, expected) => {
    const ref = parseReference(text)
    expect(ref).toEqual({domain: undefined, tag: undefined, digest: undefined, ...expected})
    expect(formatReference(ref)).toBe(text)
  })

  it.each([
    ['', 'the reference is empty'],
    ['app name', 'a reference cannot contain spaces'],
    ['App', '"App" is not a valid name component'],
    ['app;rm', '"app;rm" is not a valid name component'],
    ['$(id)', '"$(id)" is not a valid name component'],
    ['app:', 'tag "" is invalid'],
    ['app:.x', 'tag ".x" is invalid'],
    [`app:${'a'.repeat(129)}`, 'is invalid'],
    ['app@sha256:abc', 'is not a digest'],
    [`app@sha256:${'A'.repeat(64)}`, 'a sha256 digest is 64 lowercase hex characters'],
    ['a--/b', 'is not a valid name component'],
    ['host:99999/app', 'port "99999" is not a number from 1 to 65535'],
    ['[zz::1]:5000/app', 'is not an IPv6 address'],
    [`${'a'.repeat(256)}`, 'longer than 255']
  ])('refuses %j', (text, message) => {
    expect(() => parseReference(text)).toThrow(message)
  })
})

describe('parseRegistryAddress', () => {
  it.each([
    ['localhost', {host: 'localhost', port: undefined}],
    ['localhost:5000', {host: 'localhost', port: 5000}],
    ['registry.example.com', {host: 'registry.example.com', port: undefined}],
    ['myhost:5000', {host: 'myhost', port: 5000}],
    ['127.0.0.1:5000', {host: '127.0.0.1', port: 5000}],
    ['[::1]:5000', {host: '[::1]', port: 5000}],
    ['[fd00::10]', {host: '[fd00::10]', port: undefined}]
  ])('%s', (text, expected) => {
    expect(parseRegistryAddress(text)).toEqual({...expected, text})
  })

  it.each([
    ['myhost', 'a bare host name would be read as a Docker Hub namespace'],
    ['https://r.example.com', 'without a scheme'],
    ['r.example.com/ns', 'without a path'],
    ['r.example.com:0', 'is not a number from 1 to 65535'],
    ['bad_host.example.com', 'is not a host name or IPv4 address'],
    [':5000', 'the host is empty']
  ])('refuses %j', (text, message) => {
    expect(() => parseRegistryAddress(text)).toThrow(message)
  })
})

describe('isLoopbackHost', () => {
  it.each([
    ['localhost', true],
    ['127.0.0.1', true],
    ['127.1.2.3', true],
    ['[::1]', true],
    ['registry.local', false],
    ['10.0.0.1', false]
  ])('%s → %s', (host, expected) => {
    expect(isLoopbackHost(host)).toBe(expected)
  })
})
