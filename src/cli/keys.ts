import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config';
import { openDatabase } from '../db/client';
import { KeyService } from '../keys/service';
import { KEY_CHANGED_CHANNEL } from '../keys/key-events';
import { buildSchema } from '../schema';
import { createRedisClient } from '../limits/store';

const USAGE = `Usage: npm run keys -- <command>
  create --name NAME [--scopes admin,read] [--expires 2027-01-01]   create a key; prints its secret once
  list [--all]                                                      list keys (--all includes revoked)
  revoke <id>                                                       revoke a key
  rotate <id> [--grace 3600]                                        new secret, same id; old one works for --grace seconds`;

/** Operators' entry point: same service code and database config as the server. */
export async function runKeysCli(argv: string[], out: (line: string) => void = console.log, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      scopes: { type: 'string' },
      expires: { type: 'string' },
      grace: { type: 'string' },
      all: { type: 'boolean' },
    },
  });
  const [command, id] = positionals;
  if (!command || !['create', 'list', 'revoke', 'rotate'].includes(command)) {
    out(USAGE);
    return 2;
  }
  const config = loadConfig(env);
  const database = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, poolSize: 2, timeoutMs: config.databaseTimeoutMs, purpose: 'keys CLI' }).catch((error: unknown) => {
    if (error instanceof ConfigError) return error;
    throw error;
  });
  if (database instanceof ConfigError) {
    out(`error: ${database.message}`);
    return 1;
  }
  const redis = config.redisUrl ? createRedisClient(config.redisUrl, 'cli') : undefined;
  try {
    await database.migrate();
    const keys = new KeyService({
      db: database.db,
      prefix: config.keyPrefix,
      scopes: config.scopes,
      limitedCoordinates: buildSchema(null).limitedCoordinates,
      // Running servers drop the key from their caches within a second.
      onKeyChanged: async (keyId) => void (await redis?.publish(KEY_CHANGED_CHANNEL, keyId).catch(() => undefined)),
    });
    const fail = (message: string) => (out(`error: ${message}`), 1);
    switch (command) {
      case 'create': {
        if (!values.name) return fail('--name is required');
        const expiresAt = values.expires ? new Date(values.expires) : undefined;
        if (expiresAt && Number.isNaN(expiresAt.getTime())) return fail(`--expires "${values.expires}" is not a date`);
        const scopes = values.scopes ? values.scopes.split(',').map((s) => s.trim()).filter(Boolean) : [];
        const result = await keys.create({ name: values.name, scopes, expiresAt }, null);
        if (!result.ok) return fail(result.message);
        out(`id:     ${result.value.key.id}`);
        out(`scopes: ${result.value.key.scopes.join(',') || '(none)'}`);
        out(`secret: ${result.value.secret}   (shown once: store it now)`);
        return 0;
      }
      case 'list': {
        let after: string | undefined;
        do {
          const page = await keys.list({ first: 100, after, includeRevoked: !!values.all });
          if (!page.ok) return fail(page.message);
          for (const { node } of page.value.nodes) {
            const state = node.revokedAt ? 'revoked' : node.expiresAt && node.expiresAt < new Date() ? 'expired' : 'active';
            out([node.id, node.start + '…', state, node.scopes.join(',') || '-', node.name].join('  '));
          }
          after = page.value.hasNextPage ? page.value.nodes.at(-1)?.cursor : undefined;
        } while (after);
        return 0;
      }
      case 'revoke': {
        if (!id) return fail('revoke needs a key id');
        const result = await keys.revoke(id, null);
        if (!result.ok) return fail(result.message);
        out(`revoked ${result.value.id} at ${result.value.revokedAt?.toISOString()}`);
        return 0;
      }
      case 'rotate': {
        if (!id) return fail('rotate needs a key id');
        const grace = values.grace === undefined ? 3600 : Number(values.grace);
        const result = await keys.rotate(id, grace, null);
        if (!result.ok) return fail(result.message);
        out(`id:     ${result.value.key.id}`);
        out(`secret: ${result.value.secret}   (shown once: store it now; the old secret works for ${grace} s)`);
        return 0;
      }
    }
    return 2;
  } finally {
    redis?.disconnect();
    await database.close();
  }
}

if (require.main === module) {
  runKeysCli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(err instanceof ConfigError ? `${err.message}\n` : `error: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
