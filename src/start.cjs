// `npm start`. Three ways to run the same server, fastest first:
// 1. dist/server/main.js, the build bundled into one file (npm install's `prepare` makes it), read
//    with a V8 code cache: finding, reading and compiling its ~1 400 modules one by one cost
//    about 0.3 s of every start here, a fifth of a restart. Node 20 has no compile cache of its own
//    (module.enableCompileCache is Node 22), so this keeps one beside the bundle.
// 2. dist/src/main.js, the plain build (a build without the bundle).
// 3. src/ through tsx: an install that skipped scripts (`--ignore-scripts`) must still start.
const fs = require('node:fs');
const path = require('node:path');
const Module = require('node:module');
const vm = require('node:vm');

const dist = path.join(__dirname, '..', 'dist');
const bundle = path.join(dist, 'server', 'main.js');

if (fs.existsSync(bundle)) {
  runWithCodeCache(bundle);
} else if (fs.existsSync(path.join(dist, 'src', 'main.js'))) {
  require(path.join(dist, 'src', 'main.js'));
} else {
  process.stderr.write('No build in dist/ (npm install did not run its scripts): running src/ through tsx; `npm run build` starts faster.\n');
  require('tsx/cjs');
  require('./main.ts');
}

/**
 * Runs a CommonJS file as `require` would, but compiled with V8's cached data when there is some.
 * The cache is named after the bundle's build time and this Node (V8 checks little more than the
 * source's length, so a cache must never outlive its build). Without a usable cache, one is
 * written when the server stops cleanly: by then it holds every function the run compiled, not
 * just the top level; older builds' caches are removed then. A cache that cannot be written (a
 * read-only install) only costs the speed-up.
 */
function runWithCodeCache(filename) {
  const builtAt = Math.round(fs.statSync(filename).mtimeMs);
  const cacheFile = `${filename}.${process.version}-${process.arch}-${builtAt}.v8-cache`;
  let cachedData;
  try {
    cachedData = fs.readFileSync(cacheFile);
  } catch {
    // first run of this build: compiled from source, cached at exit
  }
  const script = new vm.Script(Module.wrap(fs.readFileSync(filename, 'utf8')), { filename, cachedData });
  if (!cachedData || script.cachedDataRejected) {
    process.once('exit', (code) => {
      if (code !== 0) return; // a failed start compiled little worth keeping
      try {
        const partial = `${cacheFile}.${process.pid}`;
        fs.writeFileSync(partial, script.createCachedData());
        fs.renameSync(partial, cacheFile); // atomic: a second instance never reads half a cache
        const folder = path.dirname(filename);
        for (const old of fs.readdirSync(folder)) {
          if (old.endsWith('.v8-cache') && path.join(folder, old) !== cacheFile) fs.rmSync(path.join(folder, old), { force: true });
        }
      } catch {
        // no cache this time; the next start tries again
      }
    });
  }
  const module = new Module(filename, null);
  module.filename = filename;
  script.runInThisContext().call(module.exports, module.exports, Module.createRequire(filename), module, filename, path.dirname(filename));
}
