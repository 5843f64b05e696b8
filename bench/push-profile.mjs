// Where a first push's time goes, stage by stage (a profile, not a timed test): the daemon's export
// alone, then with the tar parsed, with each layer hashed, with each layer written to a file on
// the same disk (as streamed, and in 4 MiB writes), with each layer sent to a registry (POST, one
// streamed PATCH, PUT ?digest=), and the registry alone (the same layers PATCHed from the files,
// already in the page cache). Prints seconds, the load average and this process's CPU time so far.
// Run as root on a host with Docker, against a registry to throw away:
//   node bench/push-profile.mjs <registry host:port> <scratch folder> <image>...
import {createHash} from 'node:crypto'
import * as fs from 'node:fs'
import * as http from 'node:http'
import * as path from 'node:path'
import {pipeline} from 'node:stream/promises'
import * as tar from 'tar-stream'

const [registry, scratch, ...images] = process.argv.slice(2)
const agent = new http.Agent({keepAlive: true})

function exportStream(image) {
  return new Promise((resolve, reject) => {
    http
      .get(
        {
          socketPath: '/var/run/docker.sock',
          path: `/images/get?names=${encodeURIComponent(image)}`
        },
        resolve
      )
      .on('error', reject)
  })
}

function request(method, url, headers = {}, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {method, agent, headers}, res => {
      let text = ''
      res.on('data', c => (text += c))
      res.on('end', () => resolve(Object.assign(res, {text})))
    })
    req.on('error', reject)
    if (body && typeof body.pipe === 'function') body.pipe(req)
    else req.end(body)
  })
}

async function upload(repo, body, digestOf) {
  const start = await request('POST', `http://${registry}/v2/${repo}/blobs/uploads/`, {
    'Content-Length': '0'
  })
  const loc = new URL(start.headers.location, `http://${registry}`)
  const patched = await request('PATCH', loc, {'Content-Type': 'application/octet-stream'}, body())
  const commit = new URL(patched.headers.location, `http://${registry}`)
  commit.searchParams.set('digest', await digestOf())
  const t = performance.now()
  const put = await request('PUT', commit, {'Content-Length': '0'})
  if (put.statusCode !== 201) throw new Error(`PUT answered ${put.statusCode} ${put.text}`)
  return performance.now() - t
}

/** One image through the chosen stages; returns the layers' bytes. */
async function run(image, stage, i) {
  const res = await exportStream(image)
  if (stage === 'export') {
    let n = 0
    for await (const c of res) n += c.length
    return n
  }
  const extract = tar.extract()
  res.pipe(extract)
  let n = 0
  for await (const entry of extract) {
    if (!entry.header.name.endsWith('/layer.tar') && !entry.header.name.startsWith('blobs/')) {
      entry.resume()
      continue
    }
    const hash = createHash('sha256')
    if (stage === 'parse') {
      for await (const c of entry) n += c.length
    } else if (stage === 'hash') {
      for await (const c of entry) {
        hash.update(c)
        n += c.length
      }
    } else if (stage === 'file') {
      const file = path.join(scratch, `layer-${i}-${n}`)
      const out = fs.createWriteStream(file)
      entry.on('data', c => hash.update(c))
      await pipeline(entry, out)
      n += fs.statSync(file).size
      hash.digest()
    } else if (stage === 'file1m') {
      // Gathered into 4 MiB writes, at most one in flight: far fewer system calls.
      const fh = await fs.promises.open(path.join(scratch, `big-${i}-${n}`), 'wx')
      let buf = Buffer.allocUnsafe(4 << 20)
      let filled = 0
      let pending = Promise.resolve()
      for await (const c of entry) {
        hash.update(c)
        n += c.length
        for (let at = 0; at < c.length;) {
          const k = c.copy(buf, filled, at)
          filled += k
          at += k
          if (filled === buf.length) {
            await pending
            const full = buf
            pending = fh.write(full, 0, filled).then(() => undefined)
            buf = Buffer.allocUnsafe(4 << 20)
            filled = 0
          }
        }
      }
      await pending
      await fh.write(buf, 0, filled)
      if (process.env.SYNC) await fh.sync()
      await fh.close()
      hash.digest()
    } else if (stage === 'send') {
      const body = () => {
        entry.on('data', c => {
          hash.update(c)
          n += c.length
        })
        return entry
      }
      await upload(`profile/${stage}${i}`, body, async () => `sha256:${hash.digest('hex')}`)
    }
  }
  return n
}

/** The registry alone: each layer file PATCHed from the page cache, then committed. */
async function registryAlone(files) {
  let put = 0
  await Promise.all(
    files.map(async (f, i) => {
      const digest = `sha256:${createHash('sha256').update(fs.readFileSync(f)).digest('hex')}`
      put += await upload(
        `profile/alone${i}`,
        () => fs.createReadStream(f, {highWaterMark: 1 << 20}),
        async () => digest
      )
    })
  )
  return put
}

async function timed(label, f) {
  const t = performance.now()
  const extra = await f()
  const s = (performance.now() - t) / 1000
  const cpu = process.cpuUsage()
  console.log(
    `${label.padEnd(52)} ${s.toFixed(2)} s  ${extra ?? ''}  load ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[0]}  node cpu ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s`
  )
}

const all = stage => Promise.all(images.map((im, i) => run(im, stage, i)))
fs.mkdirSync(scratch, {recursive: true})
await timed(
  'export (API, drained)',
  async () => `${((await all('export')).reduce((a, b) => a + b) / 1e6).toFixed(0)} MB`
)
await timed('export + tar parse', () => all('parse'))
await timed('export + tar parse + sha256', () => all('hash'))
await timed('export + parse + sha256 + write a file each', () => all('file'))
await timed('export + parse + sha256 + 4 MiB writes to a file', () => all('file1m'))
await timed('export (API, drained), again', () => all('export'))
await timed('export + parse + sha256 + POST/PATCH/PUT', () => all('send'))
const files = fs
  .readdirSync(scratch)
  .filter(f => f.startsWith('layer-'))
  .map(f => path.join(scratch, f))
await timed(
  'the registry alone (PATCH from page cache + PUT)',
  async () => `PUT ${(await registryAlone(files)).toFixed(0)} ms in all`
)
agent.destroy()
