/**
 * The dependency rule of ARCHITECTURE.md, read from the source: every import points to a lower
 * layer (or stays within its folder), folders form no cycle, model files stay pure, and the
 * parsers and planners stay short enough to read as one idea.
 */
import {readFileSync, readdirSync, statSync} from 'node:fs'
import * as path from 'node:path'
import {describe, expect, it} from '@jest/globals'

const SRC = 'src'

/** Layers from the bottom up; a file may import only from a lower layer, or from its own folder. */
const LAYERS: [RegExp, string][] = [
  [/^errors\.ts$/, 'errors'],
  [/^exec\//, 'the command runner'],
  [/^models\//, 'pure models'],
  [/^(system|docker)\//, 'adapters'],
  [/^registry-client\//, 'the registry client'],
  [/^(outputs|state|host|input-fields)\.ts$/, 'the run’s records'],
  [/^phases\/[^/]+\.ts$/, 'the phase contract'],
  [/^phases\/[^/]+\/[^/]+\.ts$/, 'phases'],
  [/^(inputs\.ts|entries\.ts|summary\/[^/]+\.ts)$/, 'composition'],
  [/^(main|post)\.ts$/, 'the steps'],
  [/^index\.ts$/, 'the entry point']
]

/**
 * Model files: plain data in and out. Each says so in its header (`(pure`); the list names them
 * (`*` one name), and the test holds list and headers to each other.
 */
const PURE = [
  'phases/*/plan.ts',
  'phases/*/inputs.ts',
  'phases/*/facts.ts',
  'phases/daemon/{daemon-config,gpu,toolkit,proxy-plan,reload}.ts',
  'phases/registry/{spec,htpasswd}.ts',
  'phases/push/{image-list,push-result}.ts',
  'phases/gpus/{gpu-query,lease,health,health-driver,health-inputs,health-kernel,health-smi}.ts',
  'phases/gpus/{device-loss,driver-hold}.ts',
  'phases/disk/inventory.ts',
  'phases/teardown/objects.ts',
  'docker/*.ts',
  'models/*.ts',
  'registry-client/manifest.ts',
  'system/{os-release,proc-net}.ts',
  'input-fields.ts',
  'entries.ts',
  'summary/{markdown,render}.ts'
]

/** A list entry as the files it names: `*` one path segment, `{a,b}` either name. */
function pattern(entry: string): RegExp {
  const re = entry
    .replace(/\./g, '\\.')
    .replace(/\*/g, '[^/]+')
    .replace(/\{([^}]+)\}/g, (_m, names: string) => `(${names.split(',').join('|')})`)
  return new RegExp(`^${re}$`)
}

/** The alternatives of an entry, each its own entry (so each must name a file). */
function expand(entry: string): string[] {
  const m = /\{([^}]+)\}/.exec(entry)
  return m ? m[1].split(',').flatMap(n => expand(entry.replace(m[0], n))) : [entry]
}

const isListedPure = (file: string): boolean => PURE.some(e => pattern(e).test(file))

/** Whether a file's opening comment calls it pure (`(pure)`, `(pure constants)`, …). */
function saysPure(file: string): boolean {
  const header = /^\/\*\*([\s\S]*?)\*\//.exec(readFileSync(path.join(SRC, file), 'utf8'))
  return header !== null && /\(pure\b/.test(header[1])
}

const IMPURE = [
  [/\basync\b/, 'async'],
  [/\bprocess\.env\b/, 'process.env'],
  [/from '@actions\//, '@actions/*'],
  [/from 'node:fs'/, 'node:fs'],
  [/from 'node:child_process'/, 'node:child_process']
] as const

function files(dir: string): string[] {
  return readdirSync(dir).flatMap(name => {
    const full = path.join(dir, name)
    return statSync(full).isDirectory() ? files(full) : full.endsWith('.ts') ? [full] : []
  })
}

/** Each source file (relative to src/) with the source files it imports. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>()
  for (const file of files(SRC)) {
    const text = readFileSync(file, 'utf8')
    const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map(m => m[1])
    const rel = path.relative(SRC, file)
    graph.set(
      rel,
      specs.map(s => path.posix.join(path.posix.dirname(rel), s).replace(/\.js$/, '.ts'))
    )
  }
  return graph
}

function layer(file: string): number {
  const i = LAYERS.findIndex(([re]) => re.test(file))
  if (i < 0) throw new Error(`${file} belongs to no layer: add it to LAYERS and ARCHITECTURE.md`)
  return i
}

/** Folders are the units of the cycle check; a loose file in src/ is a unit of its own. */
function unit(file: string): string {
  const dir = path.posix.dirname(file)
  return dir === '.' ? file : dir
}

/** Each cycle among `edges`, as the path that closes it. */
function cycles(edges: Map<string, Set<string>>): string[][] {
  const found: string[][] = []
  const state = new Map<string, 'open' | 'done'>()
  const visit = (node: string, trail: string[]): void => {
    if (state.get(node) === 'done') return
    if (state.get(node) === 'open') {
      found.push([...trail.slice(trail.indexOf(node)), node])
      return
    }
    state.set(node, 'open')
    for (const next of edges.get(node) ?? []) visit(next, [...trail, node])
    state.set(node, 'done')
  }
  for (const node of edges.keys()) visit(node, [])
  return found
}

const graph = importGraph()

describe('the dependency rule', () => {
  it('reads a graph that covers the whole source', () => {
    expect(graph.size).toBeGreaterThan(30)
    for (const [file, deps] of graph) {
      for (const dep of deps) expect([file, graph.has(dep)]).toEqual([file, true])
    }
  })

  it('has no upward or sideways import: only to a lower layer, or within one folder', () => {
    const wrong: string[] = []
    for (const [file, deps] of graph) {
      for (const dep of deps) {
        const sameFolder = path.posix.dirname(dep) === path.posix.dirname(file)
        if (!sameFolder && layer(dep) >= layer(file)) {
          wrong.push(
            `${file} (${LAYERS[layer(file)][1]}) imports ${dep} (${LAYERS[layer(dep)][1]})`
          )
        }
      }
    }
    expect(wrong).toEqual([])
  })

  it('has no folder cycle, and no file cycle', () => {
    const folders = new Map<string, Set<string>>()
    const byFile = new Map<string, Set<string>>()
    for (const [file, deps] of graph) {
      byFile.set(file, new Set(deps))
      const from = folders.get(unit(file)) ?? new Set<string>()
      for (const dep of deps) if (unit(dep) !== unit(file)) from.add(unit(dep))
      folders.set(unit(file), from)
    }
    expect(cycles(folders)).toEqual([])
    expect(cycles(byFile)).toEqual([])
  })

  it('gives every phase folder its own inputs and a phase', () => {
    for (const phase of readdirSync(path.join(SRC, 'phases')).filter(n => !n.endsWith('.ts'))) {
      expect([phase, graph.has(`phases/${phase}/inputs.ts`)]).toEqual([phase, true])
      expect([phase, graph.has(`phases/${phase}/phase.ts`)]).toEqual([phase, true])
    }
  })
})

describe('model files', () => {
  it('are pure: no async, process.env, @actions/*, node:fs or node:child_process', () => {
    const impure: string[] = []
    for (const file of graph.keys()) {
      if (!isListedPure(file)) continue
      const text = readFileSync(path.join(SRC, file), 'utf8')
      for (const [re, what] of IMPURE) if (re.test(text)) impure.push(`${file}: ${what}`)
    }
    expect(impure).toEqual([])
  })

  it('are the files whose headers say pure, and every entry of the list names a file', () => {
    const files = [...graph.keys()].sort()
    expect(files.filter(isListedPure)).toEqual(files.filter(saysPure))
    const empty = PURE.flatMap(expand).filter(e => !files.some(f => pattern(e).test(f)))
    expect(empty).toEqual([])
  })
})

describe('parsers and planners', () => {
  it('are each under 60 lines, every parse* and plan* function', () => {
    const long: string[] = []
    for (const file of graph.keys()) {
      const lines = readFileSync(path.join(SRC, file), 'utf8').split('\n')
      lines.forEach((line, i) => {
        const m = /^(?:export )?(?:async )?function (plan\w*|parse\w*)\(/.exec(line)
        if (!m) return
        const length = lines.slice(i).findIndex(l => l === '}') + 1
        if (length >= 60) long.push(`${file}: ${m[1]} is ${length} lines`)
      })
    }
    expect(long).toEqual([])
  })
})

describe('ARCHITECTURE.md', () => {
  const doc = readFileSync('ARCHITECTURE.md', 'utf8')
  const named = [...doc.matchAll(/`([\w./<>-]+\.ts)`/g)].map(m => m[1])
  const all = [...files(SRC), ...files('__tests__')].map(f => f.split(path.sep).join('/'))

  it('names only files that are there', () => {
    const missing = named.filter(
      n => !n.includes('<') && !all.some(f => f === n || f.endsWith(`/${n}`))
    )
    expect(missing).toEqual([])
  })

  it('names every file of the push phase and of the registry client', () => {
    const left = [...graph.keys()]
      .filter(f => /^(phases\/push|registry-client)\//.test(f))
      .filter(f => !named.some(n => n === path.posix.basename(f) || f.endsWith(n)))
    expect(left).toEqual([])
  })

  it('shows every folder of src/ in its tree', () => {
    const folders = readdirSync(SRC).filter(n => statSync(path.join(SRC, n)).isDirectory())
    expect(folders.filter(d => !doc.includes(`src/${d}/`))).toEqual([])
  })
})
