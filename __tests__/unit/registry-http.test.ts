/** Answers read whole from a registry: bounded, so a hostile one cannot fill the runner's memory. */
import {describe, expect, it} from '@jest/globals'
import * as http from 'node:http'
import type {AddressInfo} from 'node:net'
import {RegistryError, readReply} from '../../src/registry-client/http.js'

/** A server on 127.0.0.1 that answers every request with `bytes` bytes. */
async function answering(bytes: number): Promise<{url: string; close: () => void}> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200)
    res.end(Buffer.alloc(bytes, 'x'))
  })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  const {port} = server.address() as AddressInfo
  return {url: `http://127.0.0.1:${port}/v2/app/manifests/1`, close: () => server.close()}
}

function get(url: string): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => http.get(url, resolve).on('error', reject))
}

describe('readReply', () => {
  it('reads an answer within the bound whole', async () => {
    const s = await answering(1000)
    try {
      const r = await readReply(await get(s.url), 1024)
      expect(r.body.length).toBe(1000)
    } finally {
      s.close()
    }
  })

  it('refuses an answer past the bound instead of holding it in memory', async () => {
    const s = await answering(64 * 1024)
    try {
      const e = await readReply(await get(s.url), 1024).catch((x: unknown) => x)
      expect(e).toBeInstanceOf(RegistryError)
      expect((e as RegistryError).message).toBe('an answer of more than 1024 bytes (200)')
      expect((e as RegistryError).transient).toBe(false)
    } finally {
      s.close()
    }
  })
})
