/** The runner's label: actions/runner's hash of its root folder's path, not of any file in it. */
import {describe, expect, it} from '@jest/globals'
import {pathHash, runnerLabelOf} from '../../src/system/runner-label.js'

describe('runnerLabelOf', () => {
  // Expected values: `printf '%s' PATH | sha256sum`, first 6 hex digits.
  const cases: [string, string][] = [
    ['/home/runner/actions-runner', 'd94681'],
    ['/home/runner/Actions-Runner', 'd94681'], // lower-cased first, as GetPathHash does
    ['/actions-runner', 'c3f261'],
    ['/opt/runner', '50aeb9']
  ]
  it.each(cases)('labels the runner in %s with %s (no file is read)', (folder, label) => {
    expect(runnerLabelOf(folder)).toBe(label)
    expect(pathHash(folder)).toHaveLength(64)
  })
})
