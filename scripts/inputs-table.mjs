#!/usr/bin/env node
// Renders the README's inputs and outputs tables from action.yml, between the marker comments.
// `node scripts/inputs-table.mjs` rewrites README.md; a unit test fails when the two differ.
import {readFileSync, writeFileSync} from 'node:fs'
import {parse} from 'yaml'

const BEGIN = '<!-- inputs-table:begin (generated from action.yml by scripts/inputs-table.mjs) -->'
const END = '<!-- inputs-table:end -->'

const cell = text =>
  String(text)
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/\|/g, '\\|')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')

/** The markdown tables for action.yml's text. */
export function renderTables(actionYml) {
  const action = parse(actionYml)
  const lines = ['### Inputs', '', '| input | default | meaning |', '|---|---|---|']
  for (const [name, spec] of Object.entries(action.inputs)) {
    const def = spec.default === undefined || spec.default === '' ? '' : `\`${spec.default}\``
    lines.push(`| \`${name}\` | ${def} | ${cell(spec.description)} |`)
  }
  lines.push('', '### Outputs', '', '| output | meaning |', '|---|---|')
  for (const [name, spec] of Object.entries(action.outputs)) {
    lines.push(`| \`${name}\` | ${cell(spec.description)} |`)
  }
  return lines.join('\n')
}

/** README text with the generated block replaced. */
export function withTables(readme, actionYml) {
  const start = readme.indexOf(BEGIN)
  const end = readme.indexOf(END)
  if (start < 0 || end < start) throw new Error('README.md lacks the inputs-table markers')
  return `${readme.slice(0, start + BEGIN.length)}\n${renderTables(actionYml)}\n${readme.slice(end)}`
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const readme = readFileSync('README.md', 'utf8')
  writeFileSync('README.md', withTables(readme, readFileSync('action.yml', 'utf8')))
}
