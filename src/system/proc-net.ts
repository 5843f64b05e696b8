/** The kernel's socket tables (/proc/net/tcp, /proc/net/tcp6), parsed (pure). */

/** One listening TCP socket: its local address (as the kernel writes it, hex) and port. */
export interface Listener {
  address: string
  port: number
}

/** LISTEN sockets (state 0A) in /proc/net/tcp or /proc/net/tcp6 text. */
export function parseListeners(text: string): Listener[] {
  const out: Listener[] = []
  for (const line of text.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/)
    const local = cols[1]
    if (cols[3] !== '0A' || local === undefined || !local.includes(':')) continue
    const [address, port] = local.split(':')
    out.push({address, port: parseInt(port, 16)})
  }
  return out
}

/** Is something listening on `port` (any local address)? Readable by any user, unlike `ss -p`. */
export function portListened(listeners: readonly Listener[], port: number): boolean {
  return listeners.some(l => l.port === port)
}
