import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// `npm start` (src/start.cjs) runs the build when npm install made one, and the sources through
// tsx when it did not (an install with --ignore-scripts): it must start either way.
describe('npm start\'s command', () => {
  const root = path.resolve(__dirname, '..', '..');
  let checkout: string;
  const run = () =>
    execFileSync(process.execPath, [path.join(checkout, 'src', 'start.cjs')], {
      env: { PATH: process.env.PATH, NODE_OPTIONS: '', NODE_PATH: path.join(root, 'node_modules') },
      stdio: ['ignore', 'pipe', 'pipe'],
    }).toString();
  beforeEach(() => {
    checkout = mkdtempSync(path.join(os.tmpdir(), 'tollgate-start-'));
    mkdirSync(path.join(checkout, 'src'));
    copyFileSync(path.join(root, 'src', 'start.cjs'), path.join(checkout, 'src', 'start.cjs'));
    // TypeScript only tsx can run: a type annotation.
    writeFileSync(path.join(checkout, 'src', 'main.ts'), "const from: string = 'sources';\nprocess.stdout.write(from);\n");
  });
  afterEach(() => rmSync(checkout, { recursive: true, force: true }));

  it('runs the sources through tsx when there is no build', () => {
    expect(run()).toBe('sources');
  });

  it('runs the build when there is one', () => {
    mkdirSync(path.join(checkout, 'dist', 'src'), { recursive: true });
    writeFileSync(path.join(checkout, 'dist', 'src', 'main.js'), "process.stdout.write('build');\n");
    expect(run()).toBe('build');
  });
});
