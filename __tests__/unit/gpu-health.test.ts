/** The GPU health gate's parsers and verdict, on real captures (see __fixtures__/README.md). */
import {readFileSync} from 'node:fs'
import {describe, expect, it} from '@jest/globals'
import {HostError, InputError} from '../../src/errors.js'
import {checkDevices} from '../../src/phases/daemon/gpu-check.js'
import {gpuDevices} from '../../src/phases/gpus/gpu-query.js'
import {
  assessHealth,
  findLeftovers,
  healthOutput,
  operatorLine,
  type HealthFacts
} from '../../src/phases/gpus/health.js'
import {
  mismatchText,
  parseMismatch,
  parseModuleVersion
} from '../../src/phases/gpus/health-driver.js'
import {parseGpuHealthInputs} from '../../src/phases/gpus/health-inputs.js'
import {parseKernelLog, xidKind, XID_CATALOGUE} from '../../src/phases/gpus/health-kernel.js'
import {
  gpuHealthPhase,
  planGpuHealth,
  type GpuHealthPlan
} from '../../src/phases/gpus/health-phase.js'
import {normaliseBus, parseSmiXml, perGpuQueries} from '../../src/phases/gpus/health-smi.js'
import type {LeaseView} from '../../src/phases/gpus/plan.js'
import {planGpus} from '../../src/phases/gpus/plan.js'
import type {PhaseContext} from '../../src/phases/pipeline.js'
import type {GpuHealthInputs} from '../../src/phases/gpus/health-inputs.js'

const fixture = (name: string): string => readFileSync(`__fixtures__/gpu-health/${name}`, 'utf8')
const A100 = fixture('smi-x-a100-510.xml')
const L4 = fixture('smi-x-l4-555.xml')
const A100_UUID = 'GPU-27b94a00-ed54-5c24-b1fd-1054085de32a'
const L4_UUID = 'GPU-c5533cd4-5a60-059e-348d-b6d7466932e4'

/** A real capture with one value changed, as a failing GPU prints it. */
function doctored(xml: string, from: string, to: string): string {
  expect(xml).toContain(from)
  return xml.replace(from, to)
}

describe('nvidia-smi -q -x', () => {
  it('reads a healthy A100 (DTD v11, MIG on): uuid, PCI address, no problem', () => {
    // The MIG devices' own ECC counters sit in the same document; they are not the GPU's.
    expect(parseSmiXml(A100)).toEqual([
      {
        uuid: A100_UUID,
        name: 'NVIDIA A100-SXM4-40GB',
        bus: '0000:00:04',
        uncorrectable: [],
        pendingRetirement: false,
        remapPending: false,
        remapFailure: false,
        resetRequired: false,
        unread: []
      }
    ])
  })

  it('reads a healthy L4 (DTD v12, row remapping and reset status present): no problem', () => {
    const [g] = parseSmiXml(L4)
    expect(g).toMatchObject({uuid: L4_UUID, name: 'NVIDIA L4', bus: '0000:01:00'})
    expect(g.uncorrectable).toEqual([])
    expect([g.pendingRetirement, g.remapPending, g.remapFailure, g.resetRequired]).toEqual([
      false,
      false,
      false,
      false
    ])
  })

  /** The capture with the volatile counter `field` changed from `old` to `n`. */
  const volatile = (xml: string, field: string, n: number, old: string): string => {
    const re = new RegExp(`(<volatile>[\\s\\S]*?<${field}>)${old}(</${field}>)`)
    expect(xml).toMatch(re)
    return xml.replace(re, `$1${n}$2`)
  }

  it.each([
    ['A100', A100, 'dram_uncorrectable', 'N/A', 2],
    ['A100', A100, 'sram_uncorrectable', 'N/A', 1],
    ['L4', L4, 'dram_uncorrectable', '0', 3],
    ['L4', L4, 'sram_uncorrectable_secded', '0', 1],
    ['L4', L4, 'sram_uncorrectable_parity', '0', 4]
  ])('%s: volatile %s %s → %s is an uncorrectable error', (_gpu, xml, field, old, n) => {
    const [g] = parseSmiXml(volatile(xml, field, n, old))
    expect(g.uncorrectable).toEqual([{field: `volatile ${field}`, count: n}])
  })

  it('does not count aggregate (lifetime) errors or correctable ones', () => {
    const xml = doctored(
      A100,
      '<aggregate>\n                <sram_correctable>0</sram_correctable>\n                <sram_uncorrectable>0</sram_uncorrectable>',
      '<aggregate>\n                <sram_correctable>7</sram_correctable>\n                <sram_uncorrectable>5</sram_uncorrectable>'
    )
    expect(parseSmiXml(volatile(xml, 'dram_correctable', 9, 'N/A'))[0].uncorrectable).toEqual([])
  })

  it.each([
    [
      'pending page retirement',
      A100,
      '<pending_retirement>N/A</pending_retirement>',
      '<pending_retirement>Yes</pending_retirement>',
      'pendingRetirement'
    ],
    [
      'pending blacklist (older drivers)',
      A100,
      '<pending_blacklist>N/A</pending_blacklist>',
      '<pending_blacklist>Yes</pending_blacklist>',
      'pendingRetirement'
    ],
    [
      'remapping pending',
      L4,
      '<remapped_row_pending>No</remapped_row_pending>',
      '<remapped_row_pending>Yes</remapped_row_pending>',
      'remapPending'
    ],
    [
      'remapping failure',
      L4,
      '<remapped_row_failure>No</remapped_row_failure>',
      '<remapped_row_failure>Yes</remapped_row_failure>',
      'remapFailure'
    ],
    [
      'reset required',
      L4,
      '<reset_required>No</reset_required>',
      '<reset_required>Yes</reset_required>',
      'resetRequired'
    ]
  ] as const)('reads %s', (_what, xml, from, to, key) => {
    expect(parseSmiXml(xml)[0][key]).toBe(false)
    expect(parseSmiXml(doctored(xml, from, to))[0][key]).toBe(true)
  })

  it('names fields the driver cannot read (ERR!, [Unknown Error])', () => {
    let xml = doctored(A100, '<fan_speed>N/A</fan_speed>', '<fan_speed>ERR!</fan_speed>')
    xml = doctored(xml, '<gpu_temp>36 C</gpu_temp>', '<gpu_temp>[Unknown Error]</gpu_temp>')
    expect(parseSmiXml(xml)[0].unread).toEqual([
      {path: 'fan_speed', value: 'ERR!'},
      {path: 'temperature/gpu_temp', value: '[Unknown Error]'}
    ])
  })

  it.each([
    ['00000000:3B:00.0', '0000:3b:00'],
    ['0000:a1:00', '0000:a1:00'],
    ['0000:3b:00.0', '0000:3b:00'],
    ['00000001:02:1f.0', '0001:02:1f'],
    ['not a bus', '']
  ])('normalises the PCI address %s → %s', (text, bus) => {
    expect(normaliseBus(text)).toBe(bus)
  })
})

describe('kernel log', () => {
  it('reads an Xid 79 and the driver line that maps its PCI address to a UUID (dmesg -T)', () => {
    const log = parseKernelLog(fixture('dmesg-xid-79-akash.txt'))
    expect(log.xids).toEqual([
      {
        bus: '0000:a1:00',
        code: 79,
        line: "NVRM: Xid (PCI:0000:a1:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus."
      }
    ])
    expect(log.gpuAt.get('0000:a1:00')).toBe('GPU-979426f2-893a-7cbb-c4cf-81472f89a462')
  })

  it('reads Xids 48 and 64 from syslog lines, and nothing from the other NVRM lines', () => {
    const log = parseKernelLog(fixture('syslog-xid-48-64-gpu-operator.txt'))
    expect(log.xids.map(x => [x.bus, x.code])).toEqual([
      ['0000:07:00', 48],
      ['0000:07:00', 64]
    ])
    expect(log.xids[0].line).toMatch(/^NVRM: Xid \(PCI:0000:07:00\): 48, .*DBE/)
  })

  it("counts only what follows the driver's latest load", () => {
    const before = fixture('dmesg-xid-13-109-gpud.txt')
    expect(parseKernelLog(before).xids.map(x => x.code)).toEqual([13, 13, 13, 109])
    const reloaded = `${before}\n${fixture('dmesg-xid-79-akash.txt')}`
    expect(parseKernelLog(reloaded).xids.map(x => x.code)).toEqual([79])
  })

  it.each([
    [79, 'fatal'],
    [64, 'fatal'],
    [48, 'reset'],
    [63, 'reset'],
    [74, 'reset'],
    [94, 'reset'],
    [95, 'reset'],
    [119, 'reset'],
    [120, 'reset'],
    [62, 'reset'],
    [13, 'informational'],
    [31, 'informational'],
    [43, 'informational'],
    [109, 'informational'],
    [9999, 'informational']
  ])('classifies Xid %i as %s', (code, klass) => {
    expect(xidKind(code).class).toBe(klass)
  })

  it('has a description for every catalogue entry', () => {
    for (const kind of Object.values(XID_CATALOGUE)) expect(kind.what).not.toBe('')
  })
})

describe('driver versions', () => {
  it.each([
    ['proc-version-truenas.txt', {version: '580.173.02', open: false}],
    ['proc-version-384.txt', {version: '384.98', open: false}],
    ['proc-version-open-565.txt', {version: '565.57.01', open: true}],
    ['proc-version-open-jetson.txt', {version: '35.3.1', open: true}]
  ])('reads the loaded module from %s', (file, want) => {
    expect(parseModuleVersion(fixture(file))).toEqual(want)
  })

  it('reads nothing from other text', () => {
    expect(parseModuleVersion(undefined)).toBeUndefined()
    expect(parseModuleVersion('GCC version: gcc 12')).toBeUndefined()
  })

  it.each([
    ['mismatch-truenas.txt', '580.178'],
    ['mismatch-intel-llvm.txt', '550.144']
  ])('reads the library version of a mismatch (%s)', (file, library) => {
    expect(parseMismatch(fixture(file))).toEqual({library})
  })

  it('is no mismatch when nvidia-smi fails for another reason (no driver, no device)', () => {
    for (const f of ['no-driver.txt', 'no-devices.txt']) {
      expect(parseMismatch(readFileSync(`__fixtures__/nvidia-smi/${f}`, 'utf8'))).toBeUndefined()
    }
  })

  it('names both versions and that a reboot is needed', () => {
    const text = mismatchText('580.178', parseModuleVersion(fixture('proc-version-truenas.txt')))
    expect(text).toContain('user-space library (NVML) 580.178')
    expect(text).toContain('loaded kernel module 580.173.02')
    expect(text).toContain('reboot needed')
    expect(
      mismatchText('565.77', parseModuleVersion(fixture('proc-version-open-565.txt')))
    ).toContain('loaded kernel module 565.57.01 (open)')
  })
})

/** The akash Xid 79 line alone, moved to PCI address `bus` (the GPU under test). */
function xid79At(bus: string): string {
  const line = fixture('dmesg-xid-79-akash.txt')
    .split('\n')
    .find(l => l.includes('NVRM: Xid'))
  return (line ?? '').replaceAll('0000:a1:00', bus)
}

const facts = (over: Partial<HealthFacts> = {}): HealthFacts => ({
  smi: {gpus: [...parseSmiXml(A100), ...parseSmiXml(L4)]},
  kernel: parseKernelLog(''),
  leftovers: new Map(),
  ...over
})

describe('assessHealth', () => {
  it('finds two healthy GPUs healthy', () => {
    const r = assessHealth(facts())
    expect(r.gpus.map(g => [g.index, g.uuid, g.healthy])).toEqual([
      [0, A100_UUID, true],
      [1, L4_UUID, true]
    ])
    expect(r.host).toEqual([])
    expect(healthOutput(r)).toEqual({
      [A100_UUID]: {healthy: true, problems: []},
      [L4_UUID]: {healthy: true, problems: []}
    })
  })

  it('holds a fatal Xid against its GPU, with the kernel line as evidence and "reboot"', () => {
    const r = assessHealth(facts({kernel: parseKernelLog(xid79At('0000:01:00'))}))
    const l4 = r.gpus[1]
    expect(l4.healthy).toBe(false)
    expect(l4.fix).toBe('reboot')
    expect(l4.problems).toEqual([
      `Xid 79 (GPU has fallen off the bus): "NVRM: Xid (PCI:0000:01:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus."`
    ])
    expect(r.gpus[0].healthy).toBe(true)
  })

  it('holds a double-bit ECC Xid and a volatile DBE counter against their GPU: reset', () => {
    const log = fixture('syslog-xid-48-64-gpu-operator.txt').replaceAll('0000:07:00', '0000:00:04')
    const r = assessHealth(facts({kernel: parseKernelLog(log)}))
    expect(r.gpus[0].problems.map(p => p.slice(0, 12))).toEqual(['Xid 48 (doub', 'Xid 64 (ECC '])
    expect(r.gpus[0].fix).toBe('reboot') // 64 is fatal: the strongest fix wins
    const dbe = doctored(
      L4,
      '<dram_correctable>0</dram_correctable>\n                <dram_uncorrectable>0</dram_uncorrectable>\n            </volatile>',
      '<dram_correctable>0</dram_correctable>\n                <dram_uncorrectable>2</dram_uncorrectable>\n            </volatile>'
    )
    const r2 = assessHealth(facts({smi: {gpus: parseSmiXml(dbe)}}))
    expect(r2.gpus[0]).toMatchObject({
      healthy: false,
      fix: 'reset',
      problems: ['2 uncorrectable ECC errors (volatile dram_uncorrectable)']
    })
  })

  it("keeps a job's own Xids (13, 109) as notes: the GPU stays healthy", () => {
    const log = fixture('dmesg-xid-13-109-gpud.txt').replaceAll('0000:cb:00', '0000:01:00')
    const r = assessHealth(facts({kernel: parseKernelLog(log)}))
    expect(r.gpus[1].healthy).toBe(true)
    expect(r.notes).toEqual([
      expect.stringMatching(
        /^GPU 1 \(GPU-c5533cd4.*\): Xid 13 \(graphics engine exception.*\(3 times; the first: "NVRM: Xid/
      ),
      expect.stringMatching(/^GPU 1 .*Xid 109 \(context switch timeout\)/)
    ])
  })

  it('names a GPU that fell off the bus and is no longer listed, by the UUID the driver logged', () => {
    const r = assessHealth(facts({kernel: parseKernelLog(fixture('dmesg-xid-79-akash.txt'))}))
    expect(r.host).toEqual([
      `GPU at PCI 0000:a1:00 (GPU-979426f2-893a-7cbb-c4cf-81472f89a462), not listed by nvidia-smi: Xid 79 (GPU has fallen off the bus): "NVRM: Xid (PCI:0000:a1:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus."`
    ])
  })

  it('only notes an Xid of a PCI address the driver never named as one of its GPUs', () => {
    const r = assessHealth(facts({kernel: parseKernelLog(xid79At('0000:3b:00'))}))
    expect(r.host).toEqual([])
    expect(r.notes).toEqual([
      expect.stringMatching(/^GPU at PCI 0000:3b:00, not listed by nvidia-smi: Xid 79/)
    ])
  })

  it('judges each GPU alone when one GPU without a handle makes the query of all abort', () => {
    const lost = fixture('smi-device-handle-unknown-error.txt').split('\n').slice(4).join('\n')
    // As a whole, the query names no GPU: NVML does not answer.
    expect(assessHealth(facts({smi: {failed: lost}})).gpus).toEqual([])
    const gpus = perGpuQueries([
      {bus: '0000:00:04.0', ok: true, output: A100},
      {bus: '0000:0b:00.0', ok: false, output: lost}
    ])
    const r = assessHealth(facts({smi: {gpus}}))
    expect(r.host).toEqual([])
    expect(r.gpus.map(g => [g.index, g.uuid, g.healthy])).toEqual([
      [0, A100_UUID, true],
      [1, 'PCI 0000:0b:00', false]
    ])
    expect(r.gpus[1]).toMatchObject({
      fix: 'reboot',
      problems: [
        'nvidia-smi cannot query it while the other GPUs answer: "Unable to determine the device handle for GPU 0000:0B:00.0: Unknown Error"'
      ]
    })
    // Named by the UUID the driver logged for that address, where it did.
    const kernel = parseKernelLog(
      'NVRM: GPU at PCI:0000:0b:00: GPU-67a571b1-79ee-1016-8ea3-c1fff3f1c1d2'
    )
    expect(assessHealth(facts({smi: {gpus}, kernel})).gpus[1].uuid).toBe(
      'GPU-67a571b1-79ee-1016-8ea3-c1fff3f1c1d2'
    )
  })

  it("notes, and does not fail on, an Xid of a GPU this runner does not see (a container given some of the host's GPUs)", () => {
    const kernel = parseKernelLog(fixture('dmesg-xid-79-akash.txt'))
    const mine = new Set([...parseSmiXml(A100), ...parseSmiXml(L4)].map(g => g.bus))
    const r = assessHealth(facts({kernel, driverBuses: mine}))
    expect(r.host).toEqual([])
    expect(r.notes).toEqual([
      expect.stringMatching(
        /^GPU at PCI 0000:a1:00 \(GPU-979426f2-.*\), not listed by nvidia-smi: Xid 79 .* \(a GPU this runner does not see\)$/
      )
    ])
    // Where the driver view lists it, it is this runner's missing GPU.
    const seen = assessHealth(facts({kernel, driverBuses: new Set([...mine, '0000:a1:00'])}))
    expect(seen.host).toHaveLength(1)
  })

  it('finds a GPU missing against gpu-count-expected', () => {
    expect(assessHealth(facts({expected: 2})).host).toEqual([])
    expect(assessHealth(facts({expected: 3})).host).toEqual([
      'nvidia-smi lists 2 GPUs, gpu-count-expected is 3: a GPU is missing (fallen off the bus, or not initialised)'
    ])
  })

  it('reads a version mismatch as a host problem naming both versions', () => {
    const r = assessHealth(
      facts({
        smi: {failed: fixture('mismatch-truenas.txt')},
        module: parseModuleVersion(fixture('proc-version-truenas.txt'))
      })
    )
    expect(r.gpus).toEqual([])
    expect(r.host).toHaveLength(1)
    expect(r.host[0]).toContain('580.178')
    expect(r.host[0]).toContain('580.173.02')
    expect(operatorLine(r)).toMatch(
      /^gpu-health: NVIDIA driver version mismatch.*reboot needed.*drain this runner/
    )
  })

  it('holds a leftover process of an ended job against its GPU until it is gone', () => {
    const r = assessHealth(
      facts({leftovers: new Map([[L4_UUID, [{pid: 4242, usedMemory: 2000, job: 'job a'}]]])})
    )
    expect(r.gpus[1]).toMatchObject({
      healthy: false,
      fix: 'end process',
      problems: ['compute process 4242 (2000 MiB) of job a, which has ended, still runs']
    })
  })

  it('ends with one operator line: which GPU, what, what to do', () => {
    const r = assessHealth(facts({kernel: parseKernelLog(xid79At('0000:00:04'))}))
    expect(operatorLine(r, 2)).toBe(
      `gpu-health: GPU 0 (${A100_UUID}, PCI 0000:00:04): Xid 79 (GPU has fallen off the bus): "NVRM: Xid (PCI:0000:00:04): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus."; reboot the host. 1 of 2 GPUs healthy, 2 needed: fix them, or ask for fewer GPUs.`
    )
  })
})

describe('the operator line of a host where nvidia-smi lists no GPU and nothing else is wrong', () => {
  it('says that no GPU answers, with no empty problem before it', () => {
    expect(operatorLine({gpus: [], host: [], notes: []})).toBe(
      'gpu-health: No GPU answers: drain this runner (take it offline) until the host is fixed.'
    )
  })
})

describe('findLeftovers', () => {
  const apps = `${L4_UUID}, 4242, 2000\n${A100_UUID}, 77, 10\n`
  const lease = (uuid: string, alive: boolean): [string, LeaseView] => [
    uuid,
    {lease: {uuid, index: 0, pid: 9, start: '1', job: 'a', since: ''}, text: '', alive}
  ]

  it("lists the processes on a GPU whose lease names an ended job's worker", () => {
    const found = findLeftovers(
      apps,
      new Map([lease(L4_UUID, false), lease(A100_UUID, true)]),
      () => true
    )
    expect([...found]).toEqual([
      [L4_UUID, [{pid: 4242, usedMemory: 2000, job: 'job a, worker pid 9'}]]
    ])
  })

  it('ignores processes that have ended, and GPUs without a lease', () => {
    expect(findLeftovers(apps, new Map([lease(L4_UUID, false)]), () => false).size).toBe(0)
    expect(findLeftovers(apps, new Map(), () => true).size).toBe(0)
  })
})

describe('the gate', () => {
  const inputs = (mode: 'fail' | 'warn' | 'off', countExpected?: number): GpuHealthInputs => ({
    mode,
    countExpected,
    holdDriver: true
  })
  const ctx = {} as PhaseContext<GpuHealthInputs>

  it('warns for each unhealthy GPU, saying whether it is kept from the job', () => {
    const f = {facts: facts({kernel: parseKernelLog(xid79At('0000:01:00'))})}
    const fail = planGpuHealth(f, inputs('fail'))
    expect(fail.found).toBe('1 of 2 GPUs healthy')
    expect(fail.steps).toEqual([])
    expect(fail.warnings).toEqual([
      expect.stringMatching(/^gpu-health: GPU 1 .*kept from this job\.$/)
    ])
    expect(planGpuHealth(f, inputs('warn')).warnings[0]).toMatch(
      /used anyway \(gpu-health: warn\)\.$/
    )
    expect(planGpuHealth({skipped: 'gpu-health is off'}, inputs('off')).found).toBe(
      'gpu-health is off'
    )
  })

  it('warns, naming the fix, when running containers would lose their GPUs on daemon-reload', () => {
    const f = {
      facts: facts({
        deviceLoss: {atRisk: true, why: 'the systemd cgroup driver and legacy mode', fix: 'cdi'}
      })
    }
    const plan = planGpuHealth(f, inputs('fail'))
    expect(plan.warnings).toEqual([
      expect.stringMatching(
        /^gpu-health: running containers lose their GPUs on systemctl daemon-reload \(the systemd cgroup driver and legacy mode\): use CDI: run this action .*`nvidia-ctk cdi generate/
      )
    ])
    expect(plan.found).toBe('2 of 2 GPUs healthy')
  })

  it('does not warn once the fix is in place', () => {
    const f = {
      facts: facts({
        deviceLoss: {atRisk: true, why: 'legacy mode', fix: 'cdi', applied: true}
      })
    }
    const plan = planGpuHealth(f, inputs('fail'))
    expect(plan.warnings).toEqual([])
    expect(plan.loss?.applied).toBe(true)
  })

  it('fails a host with no healthy GPU or a host problem in fail mode, only warns otherwise', async () => {
    const allBad = {
      facts: facts({
        kernel: parseKernelLog(`${xid79At('0000:01:00')}\n${xid79At('0000:00:04')}`)
      })
    }
    const check = (plan: GpuHealthPlan, c: typeof ctx, changed: boolean) =>
      gpuHealthPhase.check?.(plan, c, changed)
    await expect(check(planGpuHealth(allBad, inputs('fail')), ctx, false)).rejects.toThrow(
      HostError
    )
    await expect(check(planGpuHealth(allBad, inputs('fail')), ctx, false)).rejects.toThrow(
      /^gpu-health: GPU 0 .*\| GPU 1 .* 0 of 2 GPUs healthy: drain this runner/
    )
    await expect(check(planGpuHealth(allBad, inputs('warn')), ctx, false)).resolves.toBeUndefined()
    const oneBad = {facts: facts({kernel: parseKernelLog(xid79At('0000:01:00'))})}
    await expect(check(planGpuHealth(oneBad, inputs('fail')), ctx, false)).resolves.toBeUndefined()
    const missing = {facts: facts({expected: 4})}
    await expect(check(planGpuHealth(missing, inputs('fail')), ctx, false)).rejects.toThrow(
      /gpu-count-expected is 4/
    )
  })

  it('reads its inputs, refusing bad values with one line', () => {
    const raw = (h: string, c = '', hold = 'true') => ({
      'gpu-health': h,
      'gpu-count-expected': c,
      'hold-nvidia-driver': hold
    })
    expect(parseGpuHealthInputs(raw('fail'))).toEqual({
      mode: 'fail',
      countExpected: undefined,
      holdDriver: true
    })
    expect(parseGpuHealthInputs(raw('WARN', '8', 'false'))).toEqual({
      mode: 'warn',
      countExpected: 8,
      holdDriver: false
    })
    expect(() => parseGpuHealthInputs(raw('fail', '', 'yes'))).toThrow(InputError)
    expect(() => parseGpuHealthInputs(raw('strict'))).toThrow(InputError)
    expect(() => parseGpuHealthInputs(raw('fail', '0'))).toThrow(
      'Input \'gpu-count-expected\' has an invalid value "0": use a whole number from 1 to 64'
    )
  })
})

describe('leases and the gate', () => {
  const csv = (uuids: string[]) => uuids.map((u, i) => `${i}, ${u}, NVIDIA L4, 0, 23034`).join('\n')
  const U = [0, 1, 2, 3].map(i => `GPU-${String(i).repeat(8)}-0000-4000-8000-000000000000`)
  const base = {
    devices: gpuDevices(csv(U), ''),
    leases: new Map(),
    job: {pid: 1, start: '1', process: 'w', job: 'j'}
  }
  const unhealthy = new Map([
    [U[1], ['Xid 79 (GPU has fallen off the bus): "NVRM: Xid ..."']],
    [U[2], ['2 uncorrectable ECC errors (volatile dram_uncorrectable)']]
  ])

  it('never leases an unhealthy GPU', () => {
    const plan = planGpus({...base, unhealthy}, {gpus: {kind: 'count', count: 2}, gpuWait: 0})
    expect(plan.picks.map(p => p.device.index)).toEqual([0, 3])
    const all = planGpus({...base, unhealthy}, {gpus: {kind: 'all'}, gpuWait: 0})
    expect(all.picks.map(p => p.device.index)).toEqual([0, 3])
  })

  it('fails at once, naming the unhealthy GPUs, when too few healthy ones remain', () => {
    expect(() =>
      planGpus({...base, unhealthy}, {gpus: {kind: 'count', count: 3}, gpuWait: 0})
    ).toThrow(
      /^gpus: 3 GPUs asked for, but 2 of 4 are healthy; the health gate keeps GPU 1 .*Xid 79.* \| GPU 2 .*uncorrectable ECC/
    )
    expect(() =>
      planGpus(
        {...base, unhealthy},
        {gpus: {kind: 'list', gpus: [{index: 0}, {index: 2}]}, gpuWait: 0}
      )
    ).toThrow(/^gpus: the health gate keeps GPU 2 /)
  })
})

describe('the GPU check and the gate', () => {
  const gpus = {
    [A100_UUID]: {healthy: true, problems: []},
    [L4_UUID]: {healthy: false, problems: ['Xid 79 (GPU has fallen off the bus): "…"']}
  }

  it('gives the check container only the healthy GPUs when the gate keeps some', () => {
    expect(checkDevices({enforced: true, gpus})).toEqual({gpus: `"device=${A100_UUID}"`, kept: 1})
  })

  it('gives it all GPUs without the gate, with gpu-health: warn, or when all are healthy', () => {
    expect(checkDevices(undefined)).toEqual({gpus: 'all', kept: 0})
    expect(checkDevices({enforced: false, gpus})).toEqual({gpus: 'all', kept: 0})
    expect(checkDevices({enforced: true, gpus: {[A100_UUID]: gpus[A100_UUID]}})).toEqual({
      gpus: 'all',
      kept: 0
    })
  })
})
