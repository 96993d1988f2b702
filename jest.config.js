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
  // Its 500 ms default was missed once, in a whole run on a machine at load 12, by a worker whose
  // last test file had left only jest's own pipes and one timer; in the whole runs since, with
  // exit-watch.cjs, every worker ended holding jest's pipes alone. A handle that truly leaks holds
  // a worker for ever, so it is still reported, 3 s later.
  workerGracefulExitTimeout: 3000,
  reporters: ['default', '<rootDir>/test/support/skip-reporter.js'],
};
