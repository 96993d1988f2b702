const path = require('node:path');

// TOLLGATE_HANDLE_LOG=file: each worker writes what it still holds open when told to end
// (test/support/exit-watch.cjs). Workers inherit NODE_OPTIONS from this process.
if (process.env.TOLLGATE_HANDLE_LOG && !/exit-watch/.test(process.env.NODE_OPTIONS ?? '')) {
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --require ${path.join(__dirname, 'test/support/exit-watch.cjs')}`.trim();
}

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  setupFilesAfterEnv: ['<rootDir>/test/support/after-each-file.ts'],
  testTimeout: 30000,
  maxWorkers: 2,
  // A worker ends when nothing holds it open; jest force-exits it (and warns) after this long.
  // What held workers open was found with exit-watch.cjs: a closed Redis Cluster client's slot
  // refresh, re-armed for ever (src/counting/store.ts, closingForGood). The margin over jest's
  // 500 ms is for the exit itself on a machine running two suites at once; a handle that truly
  // leaks holds a worker for ever, so it is still reported.
  workerGracefulExitTimeout: 3000,
  reporters: ['default', '<rootDir>/test/support/skip-reporter.js'],
};
