/** Two projects: fast unit tests, and the e2e suite that runs the bundle in disposable hosts. */
const common = {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: {'^(\\.{1,2}/.*)\\.js$': '$1'},
  transform: {'^.+\\.ts$': ['ts-jest', {useESM: true, tsconfig: 'tsconfig.test.json'}]}
}

export default {
  projects: [
    {...common, displayName: 'unit', testMatch: ['<rootDir>/__tests__/unit/**/*.test.ts']},
    {
      ...common,
      displayName: 'e2e',
      testMatch: ['<rootDir>/__tests__/e2e/**/*.test.ts']
    }
  ]
}
