// `npm start`: the compiled server when there is a build (npm install's `prepare` makes one: node
// alone starts in about half the time), else the same sources through tsx — an install that
// skipped scripts (`--ignore-scripts`) must still start, just more slowly.
const { existsSync } = require('node:fs');
const path = require('node:path');

const built = path.join(__dirname, '..', 'dist', 'src', 'main.js');
if (existsSync(built)) {
  require(built);
} else {
  process.stderr.write('No build in dist/ (npm install did not run its scripts): running src/ through tsx; `npm run build` starts faster.\n');
  require('tsx/cjs');
  require('./main.ts');
}
