#!/usr/bin/env node
// Writes the README's step summary examples (scripts/summary-scenarios.ts) between the marker
// comments. `npm run summary-examples` rewrites README.md; a unit test fails when the two differ.
import {readFileSync, writeFileSync} from 'node:fs'
import {registerHooks} from 'node:module'

if (!process.features.typescript) {
  console.error(
    'This script needs a Node.js that runs TypeScript (22.18 or later): npm run summary-examples'
  )
  process.exit(1)
}
// The sources import each other as './x.js', the name they have once compiled: read './x.ts'.
registerHooks({
  resolve(specifier, context, next) {
    try {
      return next(specifier, context)
    } catch (e) {
      if (!/^\.{1,2}\/.*\.js$/.test(specifier)) throw e
      return next(specifier.replace(/\.js$/, '.ts'), context)
    }
  }
})
const {withExamples} = await import('./summary-scenarios.ts')
writeFileSync('README.md', withExamples(readFileSync('README.md', 'utf8')))
