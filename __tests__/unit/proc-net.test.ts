import {describe, expect, it} from '@jest/globals'
import {parseListeners, portListened} from '../../src/system/proc-net.js'

const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1388 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31337 1 0000000000000000 100 0 0 10 0
   1: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31338 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1388 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 31339 1 0000000000000000 20 4 30 10 -1
`
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
`

describe('the kernel socket tables', () => {
  it('lists LISTEN sockets only, with hex ports read', () => {
    expect(parseListeners(TCP)).toEqual([
      {address: '0100007F', port: 5000},
      {address: '00000000', port: 80}
    ])
    expect(parseListeners(TCP6)).toEqual([{address: '00000000000000000000000001000000', port: 443}])
    expect(parseListeners('')).toEqual([])
  })

  it.each([
    [80, true],
    [5000, true],
    [443, false],
    [54321, false]
  ])('port %d is listened on: %s', (port, expected) => {
    expect(portListened(parseListeners(TCP), port)).toBe(expected)
  })
})
