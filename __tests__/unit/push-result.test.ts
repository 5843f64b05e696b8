import {describe, expect, it} from '@jest/globals'
import {parsePushOutput, repoDigest} from '../../src/phases/push/push-result.js'

const D = `sha256:${'a'.repeat(64)}`

describe('push output and outputs', () => {
  it('reads the digest and size docker push prints last', () => {
    const out = `The push refers to repository [localhost:5000/app]\n5f70bf18a086: Pushed\n1: digest: ${D} size: 528\n`
    expect(parsePushOutput(out)).toEqual({digest: D, size: 528})
    expect(parsePushOutput('nothing')).toBeUndefined()
  })

  it("finds the image's digest for the target repository", () => {
    const t = {
      source: 'x',
      target: 'localhost:5000/team/app:1',
      registry: 'localhost:5000',
      repository: 'team/app',
      tag: '1',
      line: 1
    }
    expect(
      repoDigest([`localhost:5000/team/app@${D}`, `ghcr.io/x/app@sha256:${'b'.repeat(64)}`], t)
    ).toBe(D)
    expect(repoDigest([`localhost:5000/team/app2@${D}`], t)).toBeUndefined()
  })
})
