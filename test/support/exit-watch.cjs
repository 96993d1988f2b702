// Diagnostic, opt-in: TOLLGATE_HANDLE_LOG=/tmp/handles.log npm test
// Loaded into every jest worker (jest.config.js adds it to NODE_OPTIONS). When jest tells a worker
// to end, this writes what the worker still holds open — at once, and 100, 450 and 2 500 ms later,
// with where each pending timer was set — so a worker jest reports as "failed to exit gracefully"
// names what kept it alive.
const { appendFileSync } = require('node:fs');

const log = process.env.TOLLGATE_HANDLE_LOG;
const CHILD_MESSAGE_END = 2; // jest-worker's "end" message

if (log && process.send) {
  // Timers are not handles Node lists: each one's creation stack is kept while it is pending, so a
  // timer that holds a worker says where it was set.
  const { createHook } = require('node:async_hooks');
  const timers = new Map();
  createHook({
    init(id, type, _trigger, resource) {
      if (type === 'Timeout') timers.set(id, { resource, stack: new Error().stack.split('\n').slice(1).filter((l) => !/node:(internal|timers|async_hooks)|exit-watch/.test(l)).slice(0, 5).map((l) => l.trim()).join(' | ') });
    },
    destroy(id) {
      timers.delete(id);
    },
  }).enable();
  const pendingTimers = () =>
    [...timers.values()].filter(({ resource }) => resource.hasRef?.() && !resource._destroyed).map(({ resource, stack }) => ({ ms: resource._idleTimeout, stack }));
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
  const note = (when) => appendFileSync(log, `${process.pid} ${when} ${JSON.stringify(process.getActiveResourcesInfo())} ${describe()} timers ${JSON.stringify(pendingTimers())}\n`);
  process.on('message', function watchEnd(message) {
    if (!Array.isArray(message) || message[0] !== CHILD_MESSAGE_END) return;
    // A listener on 'message' keeps the IPC channel open: this one must not be what holds the worker.
    process.removeListener('message', watchEnd);
    note('end+0');
    for (const ms of [100, 450, 2500]) setTimeout(() => note(`end+${ms}`), ms).unref();
  });
}
