// Diagnostic, opt-in: TOLLGATE_HANDLE_LOG=/tmp/handles.log npm test
// Loaded into every jest worker (jest.config.js adds it to NODE_OPTIONS). When jest tells a worker
// to end, this writes what the worker still holds open — at once and 100/300/450 ms later — so a
// worker jest reports as "failed to exit gracefully" names the handle that kept it alive.
const { appendFileSync } = require('node:fs');

const log = process.env.TOLLGATE_HANDLE_LOG;
const CHILD_MESSAGE_END = 2; // jest-worker's "end" message

if (log && process.send) {
  const describe = () =>
    JSON.stringify(
      process._getActiveHandles().map((h) => ({
        type: h.constructor && h.constructor.name,
        fd: h._handle && h._handle.fd,
        remote: h.remoteAddress && `${h.remoteAddress}:${h.remotePort}`,
        pid: h.pid,
        timer: h._onTimeout && String(h._onTimeout).slice(0, 120),
      })),
    );
  const note = (when) => appendFileSync(log, `${process.pid} ${when} ${JSON.stringify(process.getActiveResourcesInfo())} ${describe()}\n`);
  process.on('message', function watchEnd(message) {
    if (!Array.isArray(message) || message[0] !== CHILD_MESSAGE_END) return;
    // A listener on 'message' keeps the IPC channel open: this one must not be what holds the worker.
    process.removeListener('message', watchEnd);
    note('end+0');
    for (const ms of [100, 300, 450]) setTimeout(() => note(`end+${ms}`), ms).unref();
  });
}
