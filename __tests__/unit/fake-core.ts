import {jest} from '@jest/globals'
import type {StateStore} from '../../src/state.js'

/** What the code under test told @actions/core, for assertions. */
export interface CoreRecord {
  outputs: Map<string, string>
  failed: string[]
  warnings: string[]
  errors: string[]
  infos: string[]
  groups: string[]
  summaries: string[]
  secrets: string[]
}

/**
 * A stand-in for @actions/core (for jest.unstable_mockModule): inputs come from `env` as the runner
 * passes them (INPUT_<NAME>), everything written is recorded. Holds every name the source imports.
 */
export function fakeCore(env: () => NodeJS.ProcessEnv): {record: CoreRecord; module: object} {
  const record: CoreRecord = {
    outputs: new Map(),
    failed: [],
    warnings: [],
    errors: [],
    infos: [],
    groups: [],
    summaries: [],
    secrets: []
  }
  const state = new Map<string, string>()
  let pending = ''
  const module = {
    getInput: (name: string, options?: {trimWhitespace?: boolean}) => {
      const value = env()[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] ?? ''
      return options?.trimWhitespace === false ? value : value.trim()
    },
    setSecret: (s: string) => void record.secrets.push(s),
    setOutput: (name: string, value: string) => void record.outputs.set(name, value),
    setFailed: (message: string) => void record.failed.push(message),
    getState: (name: string) => state.get(name) ?? '',
    saveState: (name: string, value: string) => void state.set(name, value),
    info: (m: string) => void record.infos.push(m),
    warning: (m: string) => void record.warnings.push(m),
    error: (m: string) => void record.errors.push(m),
    debug: () => undefined,
    exportVariable: () => undefined,
    group: async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
      record.groups.push(name)
      return fn()
    },
    summary: {
      addRaw(text: string) {
        pending += text
        return this
      },
      write() {
        record.summaries.push(pending)
        pending = ''
        return Promise.resolve(this)
      }
    }
  }
  return {record, module}
}

/** Step state as the runner keeps it between the main and the post step. */
export function mapState(initial: Record<string, string> = {}): StateStore & {
  values: Map<string, string>
} {
  const values = new Map(Object.entries(initial))
  return {
    values,
    get: name => values.get(name) ?? '',
    save: (name, value) => void values.set(name, value)
  }
}

/** A host lock that records whether it was taken and released. */
export function fakeLock(): {
  taken: number
  released: number
  lockHost: () => Promise<{release(): Promise<void>}>
} {
  const lock = {
    taken: 0,
    released: 0,
    lockHost: jest.fn(() => {
      lock.taken++
      return Promise.resolve({
        release: () => {
          lock.released++
          return Promise.resolve()
        }
      })
    })
  }
  return lock
}
