/** Whether the NVIDIA device nodes have their /dev/char links (reads /dev; changes nothing). */
import {existsSync, promises as fs} from 'node:fs'

/**
 * Every /dev/nvidia* character device has its /dev/char/MAJOR:MINOR link (true when there is
 * none): systemd names a container's allowed devices by that link on daemon-reload, and drops a
 * device that has none.
 */
export async function devCharLinks(dev = '/dev'): Promise<boolean> {
  const names = await fs.readdir(dev).catch(() => [] as string[])
  for (const name of names.filter(n => n.startsWith('nvidia'))) {
    const st = await fs.stat(`${dev}/${name}`).catch(() => undefined)
    if (!st?.isCharacterDevice()) continue
    // Linux's new_encode_dev: minor's low 8 bits, then 12 bits of major, then minor's high bits.
    const major = Math.floor(st.rdev / 256) & 0xfff
    const minor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00)
    if (!existsSync(`${dev}/char/${major}:${minor}`)) return false
  }
  return true
}
