import {readFileSync} from 'node:fs'
import {describe, expect, it} from '@jest/globals'
import {SCENARIOS, withExamples} from '../../scripts/summary-scenarios.js'
import {digestsText, type ImageResult} from '../../src/outputs.js'
import type {PhaseReport} from '../../src/phases/pipeline.js'
import {
  IMAGES_IN_VIEW,
  formatBytes,
  renderSummary,
  shortDigest,
  type SummaryData
} from '../../src/summary/render.js'
import {details, fence} from '../../src/summary/markdown.js'
import {delimiterRows, listItems, renderedText, tables} from './gfm.js'

/**
 * What a 60-image run (four phases, two failed pushes, an error and a warning) may print, at most:
 * 190 lines in all (each landed image is a table row and a digest line, both collapsed; the rest
 * fits in 70), of which 30 in view without opening a collapsed section.
 */
const BUDGET = {lines: 190, inView: 30}

const hex = (n: number): string => n.toString(16).padStart(4, '0').repeat(16)

function report(
  phase: string,
  status: PhaseReport['status'],
  changes: string[] = [],
  facts: PhaseReport['facts'] = []
): PhaseReport {
  return {phase, status, facts, changes, found: `${phase} found`, result: `${phase} result`}
}

/** A run that pushed `n` images, two of which failed (with errors no table cell can hold as is). */
function bigRun(n: number): SummaryData {
  const images: ImageResult[] = Array.from({length: n}, (_, i) => ({
    source: `team/app${i}:1.0`,
    target: `localhost:5000/team/app${i}:1.0`,
    digest: `sha256:${hex(i)}`,
    size: 1_500_000 * (i + 1),
    status: 'pushed'
  }))
  images[7] = {
    ...images[7],
    digest: '',
    size: 0,
    status: 'failed',
    error: 'denied: requested access to the resource is denied\nretry | `never`'
  }
  const second = Math.floor((n * 2) / 3)
  images[second] = {...images[second], digest: '', size: 0, status: 'failed', error: 'EOF'}
  const failed = images.filter(i => i.status === 'failed').map(i => i.target)
  return {
    reports: [
      report('Docker engine', 'unchanged', [], [{label: 'Docker', value: '27.3.1'}]),
      report('Daemon config and NVIDIA runtime', 'unchanged'),
      report('Local registry', 'changed', ['create the registry container']),
      report(
        'Push images',
        'failed',
        images.map(i => `push ${i.source} as ${i.target}`),
        [
          {label: 'pushed', value: n - 2},
          {label: 'unchanged', value: 0},
          {label: 'failed', value: 2}
        ]
      )
    ],
    outputs: {dockerVersion: '27.3.1', registry: 'localhost:5000', images},
    warnings: ['localhost:5000 is served over plain HTTP'],
    error: `2 of ${n} image(s) did not land: ${failed.join(', ')}. In the registry: ${images
      .filter(i => i.status !== 'failed')
      .map(i => i.target)
      .join(', ')}.`,
    dryRun: false,
    seconds: 95.25
  }
}

/** The lines outside every collapsed section. */
function inView(md: string): string[] {
  let depth = 0
  return md.split('\n').filter(line => {
    if (line.startsWith('<details')) depth++
    const shown = depth === 0
    if (line === '</details>') depth--
    return shown
  })
}

/** Every table the renderer reads from `md`, and the check that none is broken or missing. */
function expectWellFormed(md: string): ReturnType<typeof tables> {
  const found = tables(md)
  // Each delimiter row written started a table the renderer read, and no row splits differently.
  expect(found).toHaveLength(delimiterRows(md))
  expect(found.flatMap(t => t.badLines)).toEqual([])
  // No table without rows.
  expect(found.filter(t => t.rows.length === 0)).toEqual([])
  return found
}

describe('renderSummary', () => {
  it.each(Object.entries(SCENARIOS))(
    'renders %s (snapshot), every table well formed',
    (_t, data) => {
      const md = renderSummary(data)
      expectWellFormed(md)
      expect(md).toMatchSnapshot()
    }
  )

  it('shows no table when no phase ran (a bad input)', () => {
    const md = renderSummary(SCENARIOS['A bad input'])
    expect(tables(md)).toEqual([])
    expect(md).toBe(
      `## docker-gpu-setup: ❌ failed (0.1 s)\n\n> **Error:** Input 'push-concurrency' has an invalid value "0": use a whole number from 1 to 16\n`
    )
  })

  it('gives an unchanged phase one row of facts, and no changes', () => {
    const md = renderSummary(SCENARIOS['A rerun'])
    expect(md).toContain(
      '| Docker engine | ✅ unchanged | Docker `27.3.1` (docker-ce) · service `systemd` |'
    )
    expect(md).toContain(
      '| Daemon config and NVIDIA runtime | ✅ unchanged | runtimes `nvidia`, `runc` · default `nvidia` · 2 GPU(s) · driver `550.54.15` (CUDA 12.4) |'
    )
    expect(md).toContain(
      '| Local registry | ✅ unchanged | registry `localhost:5000` · data `/var/lib/docker-gpu-setup/registry` |'
    )
    expect(md).toContain('| Push images | ✅ unchanged | 0 pushed · 3 unchanged · 0 failed |')
    expect(md).not.toContain('Changes')
    expect(md).not.toContain('io.containerd')
  })

  it("falls back to a phase's own sentence when it showed no facts", () => {
    const md = renderSummary({
      reports: [report('a', 'unchanged'), report('b', 'changed', ['x'])],
      outputs: {},
      warnings: [],
      dryRun: false,
      seconds: 1
    })
    expect(md).toContain('| a | ✅ unchanged | a found |')
    expect(md).toContain('| b | 🔧 changed: 1 step | b result |')
  })

  it('lists the steps collapsed, a few per phase, open in a dry run', () => {
    const run = renderSummary(bigRun(60))
    expect(run).toContain('<details><summary>Changes: 61 steps</summary>')
    expect(listItems(run)).toContain('… and 52 more (the log lists each one)')
    expect(renderSummary(SCENARIOS['A dry run on a bare GPU host'])).toContain(
      '<details open><summary>Would change: 16 steps</summary>'
    )
  })

  describe('with 60 images, two of them failed', () => {
    const data = bigRun(60)
    const md = renderSummary(data)
    const lines = md.trimEnd().split('\n')

    it(`stays under ${BUDGET.lines} lines, ${BUDGET.inView} of them in view`, () => {
      expect(lines.length).toBeLessThanOrEqual(BUDGET.lines)
      expect(inView(md).length).toBeLessThanOrEqual(BUDGET.inView)
    })

    it('keeps the phase table to a line per phase', () => {
      const [phases] = expectWellFormed(md)
      expect(phases.rows.map(r => r[0])).toEqual(data.reports.map(r => r.phase))
      expect(phases.rows[3]).toEqual([
        'Push images',
        '❌ failed',
        '58 pushed · 0 unchanged · 2 failed'
      ])
    })

    it('lists the failed images first and in view, the others collapsed', () => {
      const [, failed, landed] = expectWellFormed(md)
      expect(failed.header).toEqual(['Not pushed', 'Source', 'Error'])
      expect(failed.rows).toEqual([
        [
          'localhost:5000/team/app7:1.0',
          'team/app7:1.0',
          'denied: requested access to the resource is denied\nretry | `never`'
        ],
        ['localhost:5000/team/app40:1.0', 'team/app40:1.0', 'EOF']
      ])
      const shown = inView(md).join('\n')
      expect(shown).toContain('| `localhost:5000/team/app7:1.0` |')
      expect(shown).not.toContain('app8:1.0')
      expect(landed.rows).toHaveLength(58)
      expect(landed.rows[0]).toEqual([
        'localhost:5000/team/app0:1.0',
        'team/app0:1.0',
        'sha256:000000000000',
        '1.50 MB',
        'pushed'
      ])
      expect(landed.rows[57][3]).toBe('90.0 MB')
      expect(md).toContain('<details><summary>58 pushed</summary>')
    })

    it('gives the digests, in full, as the digests output says them', () => {
      const block = /<summary>Digests.*\n\n```text\n([^`]*)\n```/.exec(md)
      expect(block?.[1]).toBe(digestsText(data.outputs.images ?? []))
      expect(block?.[1].split('\n')).toHaveLength(58)
    })

    it('shows the error and the warnings; an error too long for a line in full below it', () => {
      const first = data.error?.slice(0, data.error.indexOf('. In the registry') + 1)
      expect(inView(md)).toContain(`> **Error:** ${first} …`)
      const whole = details('The whole error', fence(data.error ?? '')).join('\n')
      expect(md).toContain(whole)
      expect(listItems(md)).toContain('localhost:5000 is served over plain HTTP')
    })
  })

  it(`shows up to ${IMAGES_IN_VIEW} images in view, collapses more`, () => {
    // Two of each run fail, and are in view whatever the count.
    const ten = inView(renderSummary(bigRun(IMAGES_IN_VIEW + 2))).join('\n')
    expect(ten).toContain('| `localhost:5000/team/app0:1.0` |')
    expect(ten).toContain('| `localhost:5000/team/app8:1.0` | `team/app8:1.0` | EOF |')
    const eleven = renderSummary(bigRun(IMAGES_IN_VIEW + 3))
    expect(inView(eleven).join('\n')).not.toContain('| `localhost:5000/team/app0:1.0` |')
    expect(eleven).toContain('<details><summary>11 pushed</summary>')
  })

  it('keeps every cell in its cell, whatever the values hold', () => {
    const nasty = 'a | b `c` d\ne <f> *g*'
    const md = renderSummary({
      reports: [
        report('Push images', 'failed', [nasty], [{label: 'runtimes', value: [nasty, 'runc']}]),
        {...report(nasty, 'unchanged'), found: nasty}
      ],
      outputs: {
        dockerVersion: nasty,
        images: [
          {
            source: 'a:1',
            target: 'r:5000/a:1',
            digest: '',
            size: 0,
            status: 'failed',
            error: nasty
          },
          {source: 'b:1', target: 'r:5000/b:1', digest: 'sha256:1', size: 12, status: 'pushed'}
        ]
      },
      warnings: [nasty],
      error: `${nasty}\n  level=error msg="x | y"`,
      dryRun: false,
      seconds: 1
    })
    const [phases, failed, landed, outputs] = expectWellFormed(md)
    expect(phases.rows).toEqual([
      ['Push images', '❌ failed', `runtimes ${nasty.replace('\n', ' ')}, runc`],
      [nasty, '✅ unchanged', nasty]
    ])
    expect(failed.rows).toEqual([['r:5000/a:1', 'a:1', nasty]])
    expect(landed.rows).toEqual([['r:5000/b:1', 'b:1', 'sha256:1', '12 B', 'pushed']])
    expect(outputs.rows).toEqual([['docker-version', nasty]])
    expect(listItems(md)).toEqual(['Push images', nasty, nasty])
    expect(renderedText(md)).toContain(`Error: ${nasty.split('\n')[0]}\n`)
    expect(renderedText(md)).toContain(`e <f> *g*\n  level=error msg="x | y"\n`)
  })
})

describe('formatBytes', () => {
  it.each([
    [0, ''],
    [528, '528 B'],
    [999, '999 B'],
    [1000, '1.00 kB'],
    [2_284_000, '2.28 MB'],
    [45_630_000, '45.6 MB'],
    [123_400_000, '123 MB'],
    [999_960_000, '1.00 GB'],
    [3_912_455_921, '3.91 GB'],
    [1.5e15, '1500 TB']
  ])('%d bytes is %j', (bytes, shown) => {
    expect(formatBytes(bytes)).toBe(shown)
  })
})

describe('shortDigest', () => {
  it.each([
    [`sha256:${'ab'.repeat(32)}`, 'sha256:abababababab'],
    ['sha256:1', 'sha256:1'],
    ['', '']
  ])('%j is %j', (digest, short) => {
    expect(shortDigest(digest)).toBe(short)
  })
})

describe('docs/summary.md', () => {
  it('shows the summaries the code renders (npm run summary-examples refreshes them)', () => {
    const readme = readFileSync('docs/summary.md', 'utf8')
    expect(withExamples(readme)).toBe(readme)
    for (const data of Object.values(SCENARIOS)) expect(readme).toContain(renderSummary(data))
  })
})

describe('pull-through caches', () => {
  it('shows how to pull through each cache, and not the caches output as raw JSON', () => {
    const md = renderSummary({
      reports: [report('Local registry', 'changed', ['run a cache'])],
      outputs: {caches: {'nvcr.io': 'localhost:5002', 'https://ghcr.io': 'localhost:5003'}},
      warnings: [],
      dryRun: false,
      seconds: 1
    })
    const text = renderedText(md)
    expect(text).toContain(
      'docker pull localhost:5002/nvidia/pytorch:24.05-py3 instead of nvcr.io/nvidia/pytorch:24.05-py3'
    )
    expect(text).toContain(
      'docker pull localhost:5003/<path>:<tag> instead of ghcr.io/<path>:<tag>'
    )
    expect(md).not.toContain('`caches`')
    const caches = tables(md).find(t => t.header[0] === 'Upstream')
    expect(caches?.rows.map(r => r.slice(0, 2))).toEqual([
      ['nvcr.io', 'localhost:5002'],
      ['https://ghcr.io', 'localhost:5003']
    ])
    expect(caches?.badLines).toEqual([])
  })
})

describe('GPU leases and disk space', () => {
  const base = {reports: [], warnings: [], dryRun: false, seconds: 1}
  const uuid = 'GPU-22b2c6ac-2d49-4863-197c-9c469071178a'

  it('lists the GPUs leased to the job, and who held one taken over', () => {
    const md = renderSummary({
      ...base,
      outputs: {
        gpuLeases: [
          {index: 0, uuid, name: 'NVIDIA H100', how: 'taken over', from: 'job a, worker pid 7'}
        ]
      }
    })
    const gpus = tables(md).find(t => t.header[0] === 'GPU')
    expect(gpus?.rows).toEqual([['0', uuid, 'NVIDIA H100', 'taken over from job a, worker pid 7']])
    expect(gpus?.badLines).toEqual([])
    expect(renderedText(md)).toContain(`"device=${uuid}"`)
  })

  it('shows docker system df before and after and what was removed, only when space was short', () => {
    const disk = {
      dataRoot: '/var/lib/docker',
      minFree: 2e9,
      freeBefore: 1e9,
      freeAfter: 2.5e9,
      freedBytes: 1.5e9,
      removed: ['container old (10.0 MB, stopped 2026-11-01 10:00)', 'old/a:1 (1.50 GB, …)'],
      dfBefore: 'TYPE TOTAL\nImages 9',
      dfAfter: 'TYPE TOTAL\nImages 8'
    }
    const md = renderSummary({...base, outputs: {disk}})
    const text = renderedText(md)
    expect(text).toContain(
      '/var/lib/docker: 1.00 GB → 2.50 GB free (min-free-space 2.00 GB; freed 1.50 GB).'
    )
    expect(listItems(md)).toEqual([
      'container old (10.0 MB, stopped 2026-11-01 10:00)',
      'old/a:1 (1.50 GB, …)'
    ])
    expect(text).toContain('TYPE TOTAL\nImages 9')
    expect(text).toContain('TYPE TOTAL\nImages 8')
    expect(text).toContain('1500000000')
    const enough = renderSummary({...base, outputs: {disk: {...disk, dfBefore: undefined}}})
    expect(enough).not.toContain('### Disk space')
  })
})
