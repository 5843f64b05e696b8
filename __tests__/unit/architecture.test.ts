/**
 * The dependency rule of ARCHITECTURE.md, read from the source's syntax trees: every import points
 * to a lower layer (or stays within its folder), folders form no cycle, model files stay pure and
 * import only what is pure, every file opens with its header, the parsers and planners stay short
 * enough to read as one idea, and the document names the files and layers that are there.
 */
import {readFileSync, readdirSync, statSync} from 'node:fs'
import * as path from 'node:path'
import {describe, expect, it} from '@jest/globals'
import ts from 'typescript'

const SRC = 'src'

/** Layers from the bottom up; a file may import only from a lower layer, or from its own folder. */
const LAYERS: [RegExp, string][] = [
  [/^errors\.ts$/, 'errors'],
  [/^exec\//, 'the command runner'],
  [/^models\//, 'pure models'],
  [/^(system|docker)\//, 'adapters'],
  [/^registry-client\//, 'the registry client'],
  [/^(outputs|output-writer|state|host|input-fields)\.ts$/, "the run's records"],
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
  'phases/gpus/driver-hold.ts',
  'phases/daemon/device-fix.ts',
  'phases/disk/inventory.ts',
  'phases/teardown/objects.ts',
  'phases/isolation/toolkit-config.ts',
  'docker/*.ts',
  'models/*.ts',
  'registry-client/manifest.ts',
  'system/{os-release,proc-net,runner-label}.ts',
  'errors.ts',
  'outputs.ts',
  'input-fields.ts',
  'entries.ts',
  'summary/{markdown,render}.ts'
]

/**
 * The packages a model file may import values from: computation only, nothing that reaches the
 * host, the network, the environment or the runner. Anything else (node:fs, fs, node:fs/promises,
 * child_process, node:os, @actions/*, …) makes a file an effect.
 */
const PURE_MODULES = new Set(['node:crypto', 'bcryptjs'])

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

function files(dir: string): string[] {
  return readdirSync(dir).flatMap(name => {
    const full = path.join(dir, name)
    return statSync(full).isDirectory() ? files(full) : full.endsWith('.ts') ? [full] : []
  })
}

/** Each source file (relative to src/, with / separators) and its text. */
const texts = new Map(
  files(SRC).map(f => [path.relative(SRC, f).split(path.sep).join('/'), readFileSync(f, 'utf8')])
)

/** Each source file's syntax tree. */
const trees = new Map(
  [...texts].map(([file, text]) => [
    file,
    ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true)
  ])
)

/** Whether a file's opening comment calls it pure (`(pure)`, `(pure constants)`, …). */
function saysPure(file: string): boolean {
  const header = /^\/\*\*([\s\S]*?)\*\//.exec(texts.get(file) ?? '')
  return header !== null && /\(pure\b/.test(header[1])
}

/** Every node of a tree, depth first. */
function nodes(root: ts.Node): ts.Node[] {
  const all: ts.Node[] = []
  const visit = (n: ts.Node): void => {
    all.push(n)
    ts.forEachChild(n, visit)
  }
  visit(root)
  return all
}

/** One module a file imports: its specifier, and whether only types come from it. */
interface Import {
  spec: string
  typeOnly: boolean
}

/** `{a, type b}`: types only when every name is a type (an empty list still loads the module). */
function onlyTypes(names: ts.NamedImportBindings | ts.NamedExportBindings | undefined): boolean {
  return (
    names !== undefined &&
    (ts.isNamedImports(names) || ts.isNamedExports(names)) &&
    names.elements.length > 0 &&
    names.elements.every(e => e.isTypeOnly)
  )
}

/** What a file imports or re-exports, statically or at run time (`import()`, `require()`). */
function importsOf(tree: ts.SourceFile): Import[] {
  const found: Import[] = []
  for (const n of nodes(tree)) {
    if (ts.isImportDeclaration(n) && ts.isStringLiteral(n.moduleSpecifier)) {
      const c = n.importClause
      const typeOnly = c !== undefined && (c.isTypeOnly || (!c.name && onlyTypes(c.namedBindings)))
      found.push({spec: n.moduleSpecifier.text, typeOnly})
    } else if (
      ts.isExportDeclaration(n) &&
      n.moduleSpecifier &&
      ts.isStringLiteral(n.moduleSpecifier)
    ) {
      const typeOnly = n.isTypeOnly || onlyTypes(n.exportClause)
      found.push({spec: n.moduleSpecifier.text, typeOnly})
    } else if (
      ts.isImportEqualsDeclaration(n) &&
      ts.isExternalModuleReference(n.moduleReference) &&
      ts.isStringLiteral(n.moduleReference.expression)
    ) {
      found.push({spec: n.moduleReference.expression.text, typeOnly: n.isTypeOnly})
    } else if (
      ts.isCallExpression(n) &&
      (n.expression.kind === ts.SyntaxKind.ImportKeyword ||
        (ts.isIdentifier(n.expression) && n.expression.text === 'require'))
    ) {
      const arg = n.arguments[0]
      found.push({
        spec: arg && ts.isStringLiteralLike(arg) ? arg.text : '<computed>',
        typeOnly: false
      })
    }
  }
  return found
}

/** A relative specifier as the source file it names (relative to src/). */
function resolve(file: string, spec: string): string {
  return path.posix.join(path.posix.dirname(file), spec).replace(/\.js$/, '.ts')
}

/** Each source file with the source files it imports (types too: they are dependencies). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>()
  for (const [file, tree] of trees) {
    const specs = importsOf(tree)
      .map(i => i.spec)
      .filter(s => s.startsWith('.'))
    graph.set(
      file,
      specs.map(s => resolve(file, s))
    )
  }
  return graph
}

/** Names that are the global object or the process: a model file has no use for either. */
const HOST_GLOBALS = new Set(['process', 'globalThis', 'global'])

/** Whether an identifier is used as a value here, not declared as a property's or member's name. */
function isReference(id: ts.Identifier): boolean {
  const p = id.parent
  if (ts.isPropertyAccessExpression(p) || ts.isQualifiedName(p)) {
    return ts.isPropertyAccessExpression(p) ? p.expression === id : p.left === id
  }
  if (
    (ts.isPropertySignature(p) ||
      ts.isPropertyDeclaration(p) ||
      ts.isPropertyAssignment(p) ||
      ts.isMethodDeclaration(p) ||
      ts.isMethodSignature(p) ||
      ts.isGetAccessorDeclaration(p) ||
      ts.isSetAccessorDeclaration(p) ||
      ts.isEnumMember(p)) &&
    p.name === id
  ) {
    return false
  }
  return !(ts.isBindingElement(p) && p.propertyName === id)
}

/** What makes a model file impure: waiting, the process or the global object, a host module. */
function impurities(file: string, tree: ts.SourceFile): string[] {
  const found: string[] = []
  const at = (n: ts.Node): string =>
    `${file}:${tree.getLineAndCharacterOfPosition(n.getStart(tree)).line + 1}`
  for (const n of nodes(tree)) {
    if (n.kind === ts.SyntaxKind.AsyncKeyword) found.push(`${at(n)}: async`)
    else if (ts.isAwaitExpression(n)) found.push(`${at(n)}: await`)
    else if (ts.isForOfStatement(n) && n.awaitModifier) found.push(`${at(n)}: for await`)
    else if (ts.isIdentifier(n) && HOST_GLOBALS.has(n.text) && isReference(n)) {
      found.push(`${at(n)}: ${n.text}`)
    }
  }
  for (const i of importsOf(tree)) {
    if (i.typeOnly) continue
    if (i.spec.startsWith('.')) {
      const dep = resolve(file, i.spec)
      if (!isListedPure(dep)) found.push(`${file}: imports values from ${dep}, not a model file`)
    } else if (!PURE_MODULES.has(i.spec)) {
      found.push(`${file}: imports ${i.spec}`)
    }
  }
  return found
}

/** Functions by name: declarations, methods, and functions assigned to a variable or property. */
function namedFunctions(tree: ts.SourceFile): {name: string; node: ts.Node}[] {
  const found: {name: string; node: ts.Node}[] = []
  for (const n of nodes(tree)) {
    if ((ts.isFunctionDeclaration(n) || ts.isMethodDeclaration(n)) && n.name && n.body) {
      found.push({name: n.name.getText(tree), node: n})
    } else if (ts.isArrowFunction(n) || ts.isFunctionExpression(n)) {
      const p = n.parent
      const holder =
        ts.isVariableDeclaration(p) || ts.isPropertyAssignment(p) || ts.isPropertyDeclaration(p)
          ? p.name
          : ts.isBinaryExpression(p) && p.operatorToken.kind === ts.SyntaxKind.EqualsToken
            ? p.left
            : undefined
      const name = holder?.getText(tree).replace(/^.*\./, '') ?? n.name?.getText(tree)
      if (name) found.push({name, node: n})
    }
  }
  return found
}

/** A function's length in lines, from its first line to its closing brace. */
function lineCount(tree: ts.SourceFile, node: ts.Node): number {
  const first = tree.getLineAndCharacterOfPosition(node.getStart(tree)).line
  const last = tree.getLineAndCharacterOfPosition(node.getEnd()).line
  return last - first + 1
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

describe('every source file', () => {
  it("opens with its own header: a comment, then a blank line or the file's imports", () => {
    // A comment followed straight by a declaration is that declaration's, not the file's.
    const ownHeader = (text: string): boolean => {
      const first = ts.getLeadingCommentRanges(text, 0)?.[0]
      return first?.pos === 0 && /^\n(\n|import |export [^\n]* from )/.test(text.slice(first.end))
    }
    const bare = [...texts].filter(([, text]) => !ownHeader(text)).map(([file]) => file)
    expect(bare).toEqual([])
  })
})

describe('model files', () => {
  it('are pure: no async, process or globalThis, and values only from pure files and modules', () => {
    const impure = [...trees]
      .filter(([file]) => isListedPure(file))
      .flatMap(([file, tree]) => impurities(file, tree))
    expect(impure).toEqual([])
  })

  it('are the files whose headers say pure, and every entry of the list names a file', () => {
    const all = [...texts.keys()].sort()
    expect(all.filter(isListedPure)).toEqual(all.filter(saysPure))
    const empty = PURE.flatMap(expand).filter(e => !all.some(f => pattern(e).test(f)))
    expect(empty).toEqual([])
  })
})

describe('parsers and planners', () => {
  it('are each under 60 lines, every parse* and plan* function, however it is written', () => {
    const long: string[] = []
    for (const [file, tree] of trees) {
      for (const {name, node} of namedFunctions(tree)) {
        if (!/^(parse|plan)([A-Z0-9_]|$)/.test(name)) continue
        const length = lineCount(tree, node)
        if (length >= 60) long.push(`${file}: ${name} is ${length} lines`)
      }
    }
    expect(long).toEqual([])
  })
})

describe('ARCHITECTURE.md', () => {
  const doc = readFileSync('ARCHITECTURE.md', 'utf8')
  const lines = doc.split('\n')
  const start = lines.findIndex(l => l.startsWith('## The dependency rule'))
  const tableStart = lines.findIndex((l, i) => i > start && l.startsWith('|'))
  const tableEnd = lines.findIndex((l, i) => i > tableStart && !l.startsWith('|'))
  /** The layer table, top row first: each layer's name and the files it names. */
  const layerRows = lines
    .slice(tableStart + 2, tableEnd)
    .map(l => l.split('|').map(c => c.trim()))
    .map(cells => ({name: cells[1], files: [...cells[2].matchAll(/`([^`]+)`/g)].map(m => m[1])}))
  const tree = doc.slice(doc.indexOf('```\n') + 4, doc.indexOf('\n```', doc.indexOf('```\n')))
  const tests = files('__tests__').map(f => f.split(path.sep).join('/'))

  /**
   * The files the document names, as paths relative to src/ (or the repository, for
   * `__tests__/…`): every `….ts` in backticks outside the layer table, and the tree's entries, where
   * the file names on a folder's line sit in that folder.
   */
  const prose = [...lines.slice(0, tableStart), ...lines.slice(tableEnd)].join('\n')
  const quoted = [...prose.matchAll(/`([\w./<>*-]+\.ts)`/g)].map(m => m[1])
  let folder = ''
  const inTree = tree.split('\n').flatMap(line => {
    // A line that starts with a path opens an entry; an indented one goes on with the last.
    const first = line.split(/\s+/)[0]
    if (first.startsWith('src/')) folder = first.endsWith('/') ? first : ''
    if (first.startsWith('src/') && !first.endsWith('/')) return [first]
    const words = first.startsWith('src/') ? line.slice(first.length) : line
    return folder ? [...words.matchAll(/\b([\w-]+\.ts)\b/g)].map(m => folder + m[1]) : []
  })
  const named = [...quoted, ...inTree].map(n => n.replace(/^src\//, ''))

  /** A named path with its placeholders (`<phase>`) and `*` as one path segment each. */
  const namePattern = (n: string): RegExp =>
    new RegExp(`^${n.replace(/\./g, '\\.').replace(/<[\w-]+>|\*/g, '[^/]+')}$`)
  const exists = (n: string): boolean =>
    n.startsWith('__tests__/')
      ? tests.some(f => namePattern(n).test(f))
      : [...texts.keys()].some(f => namePattern(n).test(f))

  it('names each file with its folder, and only files that are there', () => {
    expect(quoted.filter(n => !n.includes('/'))).toEqual([])
    expect(named.filter(n => !exists(n))).toEqual([])
  })

  it('names every file of src/', () => {
    const left = [...texts.keys()].filter(f => !named.some(n => namePattern(n).test(f)))
    expect(left).toEqual([])
  })

  it('has the layers of LAYERS, top down, each with the files LAYERS puts in it', () => {
    expect(layerRows.map(r => r.name)).toEqual(LAYERS.map(([, name]) => name).reverse())
    const rowPattern = (f: string): RegExp =>
      f.endsWith('/') ? new RegExp(`^${f}`) : namePattern(f)
    const byDoc = (file: string): string | undefined =>
      layerRows.find(r => r.files.some(f => rowPattern(f).test(file)))?.name
    const differ = [...texts.keys()]
      .filter(file => byDoc(file) !== LAYERS[layer(file)][1])
      .map(
        file =>
          `${file}: ${byDoc(file) ?? 'no layer'} in the document, ${LAYERS[layer(file)][1]} in LAYERS`
      )
    expect(differ).toEqual([])
    const unused = layerRows
      .flatMap(r => r.files)
      .filter(f => ![...texts.keys()].some(file => rowPattern(f).test(file)))
    expect(unused).toEqual([])
  })

  it('shows every folder of src/ in its tree', () => {
    const folders = readdirSync(SRC).filter(n => statSync(path.join(SRC, n)).isDirectory())
    expect(folders.filter(d => !tree.includes(`src/${d}/`))).toEqual([])
  })
})
