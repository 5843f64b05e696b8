import {describe, expect, it} from '@jest/globals'
import {parseReference, parseRegistryAddress} from '../../src/docker/reference.js'
import {splitList} from '../../src/input-fields.js'
import {parseImageList, parseTagList} from '../../src/phases/push/image-list.js'

const local = parseRegistryAddress('localhost:5000')
const DIGEST = `sha256:${'ab'.repeat(32)}`

describe('splitList', () => {
  it('splits on newlines and commas, drops comments and blanks, keeps line numbers', () => {
    expect(splitList('a, b\n\n  # c, d\n e ,\n')).toEqual([
      {value: 'a', line: 1},
      {value: 'b', line: 1},
      {value: 'e', line: 4}
    ])
  })
})

describe('parseImageList maps targets as the contract says', () => {
  it.each([
    ['ubuntu', 'localhost:5000/ubuntu:latest'],
    ['ghcr.io/org/app:1', 'localhost:5000/org/app:1'],
    ['docker.io/library/ubuntu:22.04', 'localhost:5000/ubuntu:22.04'],
    ['library/ubuntu', 'localhost:5000/ubuntu:latest'],
    [
      'docker.io/nvidia/cuda:12.4.1-base-ubuntu22.04',
      'localhost:5000/nvidia/cuda:12.4.1-base-ubuntu22.04'
    ],
    ['app => team/app:v2', 'localhost:5000/team/app:v2'],
    ['app:3 => team/app', 'localhost:5000/team/app:3'],
    ['app => registry.example.com/team/app:v2', 'registry.example.com/team/app:v2'],
    ['app => localhost/x:1', 'localhost/x:1'],
    [`app@${DIGEST} => app:pinned`, 'localhost:5000/app:pinned']
  ])('%s → %s', (line, target) => {
    const [t] = parseImageList(line, [], local)
    expect(t.target).toBe(target)
    const ref = parseReference(t.target)
    expect(ref.domain).toBe(t.registry)
    expect(ref.path).toBe(t.repository)
    expect(ref.tag).toBe(t.tag)
  })

  it('adds every extra tag to every target and removes duplicates', () => {
    const targets = parseImageList('a:1, a:1\nb', ['x', 'x', '1'], local)
    expect(targets.map(t => t.target)).toEqual([
      'localhost:5000/a:1',
      'localhost:5000/a:x',
      'localhost:5000/b:latest',
      'localhost:5000/b:x',
      'localhost:5000/b:1'
    ])
    expect(targets.map(t => t.source)).toEqual(['a:1', 'a:1', 'b', 'b', 'b'])
  })

  it.each([
    ['a => ', "line 1 (\"a =>\"): write 'source' or 'source => target'"],
    ['a => b => c', "write 'source' or 'source => target'"],
    [`x\napp@${DIGEST}`, 'line 2 ("app@sha256:abab'],
    ['a => b@sha256:' + 'ab'.repeat(32), 'a target cannot have a digest'],
    ['x:1 => y:1\nz:1 => y:1', 'target localhost:5000/y:1 is also the target of x:1 on line 1']
  ])('refuses %j', (text, message) => {
    expect(() => parseImageList(text, [], local)).toThrow(message)
  })

  it('validates tags', () => {
    expect(parseTagList('v1, sha-1\n# c\nlatest')).toEqual(['v1', 'sha-1', 'latest'])
    expect(() => parseTagList('ok\n-bad')).toThrow('line 2 ("-bad"): not a tag')
  })
})
