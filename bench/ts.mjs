#!/usr/bin/env node
// Runs a TypeScript bench script with Node's own type stripping (Node 22.18+; `npm run` puts the
// Node 24 of node_modules first on PATH). The sources import each other as './x.js', the name
// they have once compiled: read './x.ts'. Usage: node bench/ts.mjs bench/live.ts
import {registerHooks} from 'node:module'
import * as path from 'node:path'
import {pathToFileURL} from 'node:url'

if (!process.features.typescript) {
  console.error('This needs a Node.js that runs TypeScript (22.18 or later): use npm run bench:…')
  process.exit(1)
}
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
await import(pathToFileURL(path.resolve(process.argv[2])).href)
