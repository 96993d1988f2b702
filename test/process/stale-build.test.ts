import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sourceEditedSinceBuild } from '../../src/app/stale-build';

// `npm start` runs dist/; an edit to src/ after the build must not go unnoticed.
describe('a build older than the source it came from', () => {
  let checkout: string;
  let entry: string;
  const at = (file: string, seconds: number) => utimesSync(file, seconds, seconds);
  beforeEach(() => {
    checkout = mkdtempSync(path.join(os.tmpdir(), 'tollgate-checkout-'));
    mkdirSync(path.join(checkout, 'src', 'limits'), { recursive: true });
    mkdirSync(path.join(checkout, 'dist', 'src'), { recursive: true });
    writeFileSync(path.join(checkout, 'src', 'main.ts'), '');
    writeFileSync(path.join(checkout, 'src', 'limits', 'store.ts'), '');
    entry = path.join(checkout, 'dist', 'src', 'main.js');
    writeFileSync(entry, '');
    at(path.join(checkout, 'src', 'main.ts'), 1_000);
    at(path.join(checkout, 'src', 'limits', 'store.ts'), 1_000);
    at(entry, 2_000);
  });
  afterEach(() => rmSync(checkout, { recursive: true, force: true }));

  it('is named when a source file changed after the build', () => {
    at(path.join(checkout, 'src', 'limits', 'store.ts'), 3_000);
    expect(sourceEditedSinceBuild(entry)).toBe(path.join('src', 'limits', 'store.ts'));
  });

  it("is named when one of the admin console's screens or its style changed after the build", () => {
    mkdirSync(path.join(checkout, 'src', 'admin-console', 'ui'), { recursive: true });
    for (const name of ['keys.tsx', 'styles.css']) {
      const file = path.join(checkout, 'src', 'admin-console', 'ui', name);
      writeFileSync(file, '');
      at(file, 3_000);
      expect(sourceEditedSinceBuild(entry)).toBe(path.join('src', 'admin-console', 'ui', name));
      at(file, 1_000);
    }
  });

  it('is silent when the build is newer than every source file', () => {
    expect(sourceEditedSinceBuild(entry)).toBeUndefined();
  });

  it('is silent from source (tsx) and outside a checkout (an installed package has no src/)', () => {
    expect(sourceEditedSinceBuild(path.join(checkout, 'src', 'main.ts'))).toBeUndefined();
    rmSync(path.join(checkout, 'src'), { recursive: true });
    expect(sourceEditedSinceBuild(entry)).toBeUndefined();
  });
});
