import { stopAllChildren } from './processes';

// A worker jest started after the run was interrupted (in place of one the signal killed) ends
// here, before its test file starts anything the run's teardown would have to find.
if (process.env.TOLLGATE_RUN_INTERRUPTED) process.kill(process.pid, 'SIGKILL');

// Whatever a test file started and did not stop (an assertion or a start failed before its
// kill) dies with the file, as a process group: see processes.ts.
afterAll(() => stopAllChildren());
