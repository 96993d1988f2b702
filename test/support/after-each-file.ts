import { stopAllChildren } from './processes';

// Whatever a test file started and did not stop (an assertion or a start failed before its
// kill) dies with the file, as a process group: see processes.ts.
afterAll(() => stopAllChildren());
