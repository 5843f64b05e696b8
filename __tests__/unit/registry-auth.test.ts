/** The registry client's auth: where a registry's credentials may go. */
import {describe, expect, it} from '@jest/globals'
import {RegistryAuth} from '../../src/registry-client/auth.js'

const CHALLENGE = 'Bearer realm="http://auth.example/token",service="reg.example"'

function auth(): {auth: RegistryAuth; sent: Record<string, string>[]} {
  const sent: Record<string, string>[] = []
  const a = new RegistryAuth(
    'reg.example',
    {username: 'ci', password: 's3cret'},
    (_url, headers) => {
      sent.push(headers)
      return Promise.resolve({
        status: 200,
        headers: {},
        body: Buffer.from(JSON.stringify({token: 'tok'}))
      } as never)
    }
  )
  return {auth: a, sent}
}

describe('RegistryAuth', () => {
  it('never sends the credentials of a registry reached over TLS to a plain-HTTP realm', async () => {
    const {auth: a, sent} = auth()
    a.start(CHALLENGE, true)
    await expect(a.authorization(['repository:app:push'])).rejects.toThrow(
      'reg.example names a token service over plain HTTP (http://auth.example)'
    )
    expect(sent).toEqual([])
  })

  it('asks a plain-HTTP realm of a plain-HTTP registry (nothing is encrypted there anyway)', async () => {
    const {auth: a, sent} = auth()
    a.start(CHALLENGE, false)
    expect(await a.authorization(['repository:app:push'])).toBe('Bearer tok')
    expect(sent).toEqual([{Authorization: `Basic ${Buffer.from('ci:s3cret').toString('base64')}`}])
  })
})
