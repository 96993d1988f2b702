import { ensureTemplate } from '../db/pglite-template';

// Run by `npm install` (the prepare script): writes the PGlite template so the first start on an
// empty embedded database skips initdb. Failing here must not fail the install.
ensureTemplate().then(
  (file) => process.stdout.write(`PGlite template ready: ${file}\n`),
  (error: unknown) => process.stdout.write(`PGlite template not written (first start will run initdb): ${error instanceof Error ? error.message : String(error)}\n`),
);
