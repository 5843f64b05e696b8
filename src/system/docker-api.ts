/** GETs from Docker Engine's API on its local unix socket (DOCKER_HOST or /var/run/docker.sock), so detection can skip a docker process. */
import * as http from 'node:http'

/**
 * GETs `path` from the Docker Engine API over its local socket (DOCKER_HOST when it is a unix
 * socket, else /var/run/docker.sock). Undefined when it cannot be asked that way: another kind of
 * DOCKER_HOST or a context, no access to the socket (not root, not in the docker group), no daemon,
 * an answer other than 200 JSON. Callers then ask the docker CLI, which costs a process more.
 */
export async function engineGet(
  path: string,
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs = 10_000
): Promise<unknown> {
  const host = env.DOCKER_HOST
  if ((host && !host.startsWith('unix://')) || env.DOCKER_CONTEXT) return undefined
  const socketPath = host ? host.slice('unix://'.length) : '/var/run/docker.sock'
  return new Promise(resolve => {
    const req = http.get({socketPath, path, timeout: timeoutMs}, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (body += d))
      res.on('end', () => {
        try {
          resolve(res.statusCode === 200 ? (JSON.parse(body) as unknown) : undefined)
        } catch {
          resolve(undefined)
        }
      })
    })
    req.on('error', () => resolve(undefined))
    req.on('timeout', () => {
      req.destroy()
      resolve(undefined)
    })
  })
}
