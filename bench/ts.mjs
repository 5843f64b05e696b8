#!/usr/bin/env node
// Runs a TypeScript bench script. Usage: node bench/ts.mjs bench/live.ts
import * as path from 'node:path'
import {pathToFileURL} from 'node:url'
import '../scripts/ts-hooks.mjs'

await import(pathToFileURL(path.resolve(process.argv[2])).href)
