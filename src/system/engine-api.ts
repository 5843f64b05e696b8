/**
 * Docker Engine's HTTP API on its unix socket, for a process that may open the socket (root, or a
 * member of the docker group): reads without starting a `docker` process per question, and image
 * exports streamed straight from the daemon. Others go through the docker CLI and sudo instead.
 */
import {promises as fs, constants} from 'node:fs'
import * as http from 'node:http'
import type {Readable} from 'node:stream'
import * as core from '@actions/core'
import {HostError} from '../errors.js'

/** How long a request may wait for the daemon's answer (a hung dockerd holds it otherwise). */
const REQUEST_TIMEOUT_MS = 15_000

/** The daemon's error message: its JSON `message`, or the body as it came (a proxy's text). */
function daemonSays(text: string): string {
  try {
    return (JSON.parse(text) as {message?: string}).message ?? text.trim()
  } catch {
    return text.trim()
  }
}

/** A streamed answer of the daemon. */
export interface EngineStream {
  status: number
  body: Readable
  /** Stops reading (the daemon ends its side). */
  abort(): void
}

/** The Engine API over one unix socket. */
export class EngineApi {
  constructor(readonly socketPath: string) {}

  /**
   * GET `path`; the body is the caller's to read. A daemon that sends no headers within
   * `timeoutMs` (a hung dockerd) fails the request instead of holding it; 0 waits as long as it
   * takes (an image export, which the daemon writes out whole before its first byte).
   */
  get(path: string, timeoutMs = REQUEST_TIMEOUT_MS): Promise<EngineStream> {
    core.debug(`engine: GET ${path}`)
    return new Promise((resolve, reject) => {
      const req = http.get({socketPath: this.socketPath, path, headers: {Host: 'docker'}}, res => {
        req.setTimeout(0)
        resolve({status: res.statusCode ?? 0, body: res, abort: () => req.destroy()})
      })
      if (timeoutMs > 0) {
        req.setTimeout(timeoutMs, () =>
          req.destroy(new Error(`Docker did not answer GET ${path} within ${timeoutMs / 1000} s`))
        )
      }
      req.on('error', reject)
    })
  }

  /** POST `path` with no body; throws with the daemon's message unless it answers 2xx. */
  async post(path: string): Promise<void> {
    core.debug(`engine: POST ${path}`)
    const r = await new Promise<{status: number; text: string}>((resolve, reject) => {
      const req = http.request(
        {socketPath: this.socketPath, path, method: 'POST', headers: {Host: 'docker'}},
        res => {
          let text = ''
          res.setEncoding('utf8')
          res.on('data', (d: string) => (text += d))
          res.on('end', () => resolve({status: res.statusCode ?? 0, text}))
        }
      )
      req.setTimeout(REQUEST_TIMEOUT_MS, () =>
        req.destroy(
          new Error(`Docker did not answer POST ${path} within ${REQUEST_TIMEOUT_MS / 1000} s`)
        )
      )
      req.on('error', reject)
      req.end()
    })
    if (r.status < 200 || r.status > 299) {
      throw new HostError(`Docker answered ${r.status} to POST ${path}: ${daemonSays(r.text)}`)
    }
  }

  /** GET `path` as JSON; undefined for 404 (no such image or container). */
  async json<T>(path: string, timeoutMs?: number): Promise<T | undefined> {
    const r = await this.get(path, timeoutMs)
    const chunks: Buffer[] = []
    for await (const c of r.body) chunks.push(c as Buffer)
    const text = Buffer.concat(chunks).toString('utf8')
    if (r.status === 404) return undefined
    if (r.status !== 200) {
      throw new HostError(`Docker answered ${r.status} to GET ${path}: ${daemonSays(text)}`)
    }
    return JSON.parse(text) as T
  }
}

/** The Engine API on `socket` when this process may open it; undefined when the docker CLI (with sudo) has to ask instead. */
export async function openEngineApi(socket: string | undefined): Promise<EngineApi | undefined> {
  if (socket === undefined) return undefined
  try {
    await fs.access(socket, constants.R_OK | constants.W_OK)
    return new EngineApi(socket)
  } catch {
    return undefined
  }
}
