// Prints, as the run's last lines, how many suites were skipped and why (services unreachable
// outside CI). Suites record their skips in the file global-setup.ts names.
const { existsSync, readFileSync } = require('node:fs');

class SkipReporter {
  onRunComplete() {
    const file = process.env.TOLLGATE_SKIP_LOG;
    if (!file || !existsSync(file)) return;
    const skips = [...new Set(readFileSync(file, 'utf8').split('\n').filter(Boolean))].map((l) => JSON.parse(l));
    if (!skips.length) return;
    const lines = skips.map((s) => `  - ${s.name}: ${s.reason}`);
    process.stdout.write(`\n*** ${skips.length} suite(s) or backend row(s) SKIPPED:\n${lines.join('\n')}\n`);
  }
}
module.exports = SkipReporter;
