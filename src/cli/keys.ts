#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { ConfigError } from '../config';
import { DataDirInUseError } from '../db/data-dir-lock';
import { UsageError } from './args';
import { OPTIONS, type Command, type Context } from './command';
import { consumerCommands } from './consumer-commands';
import { keyCommands } from './key-commands';
import { AdminError, localAdmin, remoteAdmin, type AdminApi } from './transport';
import { usageCommands } from './usage-commands';

/** How the operator runs this: the package's command, or the repository's script (through tsx). */
const PROGRAM = __filename.endsWith('.ts') ? 'npm run keys --' : 'npx tollgate-keys';

const USAGE = `Usage: ${PROGRAM} [--url URL [--key-stdin]] [--json] <command>

Keys
  create --name NAME [--scopes admin,read] [--expires 2027-01-01] [--consumer ID] [--budget 500/60[,10000/3600]]
         [--limits Query.forecast=10/60,…] [--allowed-ips 203.0.113.0/24,2001:db8::/48] [--allowed-origins https://app.example.com]
                                              a key; prints its secret once
  update <id> [the options of create]         change a key; what is not given stays as it is;
                                              --expires never, --consumer/--budget/--limits/--allowed-ips/--allowed-origins none clear
  show <id>                                   one key
  list [--all]                                keys: status, scopes, budget, expiry, last use, consumer (--all: revoked too)
  rotate <id> [--grace 3600]                  new secret, same id; the old one works for --grace seconds (0: stops now)
  revoke <id>                                 revoke a key (idempotent)
  audit [<key id>] [--target ID] [--first 50] audit events, newest first (of a key, or of a consumer or plan)

Consumers and plans
  create-consumer --name NAME [--external-id ID] [--plan ID] [--budget …] [--quotas 1000/day,30000/month] [--limits …]
         [--scopes read] [--expires DATE] [--no-key]
                                              a consumer and its first key (--scopes, --expires), in one command
  update-consumer <id> [--name N] [--external-id ID|none] [--plan ID|none] [--budget …|none] [--quotas …|none] [--limits …|none]
  show-consumer <id>                          one consumer and its keys
  consumers [--search TEXT]                   consumers (TEXT in the name or external id)
  delete-consumer <id>                        refused while it has live keys
  create-plan --name NAME [--budget …] [--quotas …] [--limits …] [--max-cost 500]
  update-plan <id> [--name N] [--budget …|none] [--quotas …|none] [--limits …|none] [--max-cost N|none]
  show-plan <id>, plans, delete-plan <id>     (delete: refused while a consumer is on it)

Usage
  usage (<key id> | --consumer ID) --from DATE --to DATE [--granularity minute|hour|day] [--fields | --refusals]
                                              usage history as CSV (per field with --fields, per gate with --refusals)
  top --from DATE --to DATE [--by consumer|key] [--first 10]
                                              who spent the most points, as CSV

--budget is POINTS/SECONDS windows (a request must fit in every one), --quotas POINTS/day or
POINTS/month, --limits Type.field=LIMIT/SECONDS for fields that carry @rateLimit. --json prints
what the admin API answered (keys with their status) as JSON, for scripts; errors go to standard
error with a non-zero exit status either way.

Without --url the CLI opens the database itself (DATABASE_URL, or the embedded DATA_DIR while no
server holds it). With --url it goes through a running server's admin API, authenticated by an
admin key read from TOLLGATE_ADMIN_KEY, or from standard input with --key-stdin (one line): the
way to manage keys while the embedded server is running. A key is never an argument: arguments
show in \`ps\` and shell history.`;

const COMMANDS: Record<string, Command> = { ...keyCommands, ...consumerCommands, ...usageCommands };

/** An argument as the operator would type it again in a shell. */
const shellWord = (arg: string) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`);

/** Operators' entry point: the admin API, run here over the database or sent to a server with --url. */
export async function runKeysCli(
  argv: string[],
  out: (line: string) => void = console.log,
  env: NodeJS.ProcessEnv = process.env,
  /** Read only with --key-stdin: merely touching process.stdin opens it (a test worker's too). */
  stdin?: NodeJS.ReadableStream,
  err: (line: string) => void = out,
): Promise<number> {
  const fail = (message: string, code = 1) => (err(`error: ${message}`), code);
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: OPTIONS });
  } catch (error) {
    err(USAGE);
    return fail((error as Error).message, 2);
  }
  const { values, positionals } = parsed;
  const [name, id, ...extra] = positionals;
  if (values.help || name === 'help') {
    out(USAGE);
    return 0;
  }
  const command = name ? COMMANDS[name] : undefined;
  if (!command || !Object.hasOwn(COMMANDS, name)) {
    err(USAGE);
    return name ? fail(`unknown command "${name}"`, 2) : 2;
  }
  if (command.id && !id) return fail(`${name} needs ${command.id}`);
  if (extra.length) return fail(`unexpected argument "${extra[0]}" (give one id; lists are comma-separated)`, 2);
  if (values.key !== undefined) {
    return fail('--key is not accepted: a key on the command line shows in `ps` and in shell history. Set TOLLGATE_ADMIN_KEY, or pipe it in with --key-stdin (e.g. `--key-stdin < admin-key.txt`) — and rotate the key you just typed.', 2);
  }
  if (values['key-stdin'] && !values.url) return fail('--key-stdin is for --url (the admin key of a running server)', 2);

  let admin: AdminApi | undefined;
  const ctx: Context = {
    values,
    id: id ?? '',
    async admin() {
      if (admin) return admin;
      if (!values.url) return (admin = await localAdmin(env));
      const adminKey = values['key-stdin'] ? await firstLine(stdin ?? process.stdin) : env.TOLLGATE_ADMIN_KEY?.trim();
      if (!adminKey) throw new UsageError(values['key-stdin'] ? '--key-stdin: standard input held no key' : '--url needs an admin key: set TOLLGATE_ADMIN_KEY, or pipe it in with --key-stdin');
      return (admin = remoteAdmin(values.url, adminKey));
    },
    print(value, text) {
      if (values.json) out(JSON.stringify(value, null, 2));
      else for (const line of text(value)) out(line);
    },
    note(line) {
      if (!values.json) err(line);
    },
  };
  try {
    await command.run(ctx);
    return 0;
  } catch (error) {
    if (error instanceof DataDirInUseError) {
      // The server holding the folder is where this command can go, at the address it really serves on.
      const { holder, dataDir } = error;
      const again = `TOLLGATE_ADMIN_KEY=<admin key> ${PROGRAM} --url ${holder.url ?? '<the address it serves on>'} ${argv.map(shellWord).join(' ')}`;
      return fail(`DATA_DIR: the embedded database ${dataDir} is in use by process ${holder.pid} (${holder.purpose}, since ${holder.startedAt}${holder.url ? `, serving ${holder.url}` : ''}), and PGlite allows one process per folder. Go through its admin API instead:\n  ${again}`);
    }
    if (error instanceof UsageError || error instanceof AdminError || error instanceof ConfigError) return fail(error.message);
    throw error;
  } finally {
    await admin?.close();
  }
}

/** The first line of a stream (the whole of it, up to 64 KB), trimmed. */
async function firstLine(stream: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stream) {
    text += String(chunk);
    if (text.length > 65_536 || text.includes('\n')) break;
  }
  return text.split('\n')[0].trim();
}

if (require.main === module) {
  runKeysCli(process.argv.slice(2), console.log, process.env, process.stdin, console.error).then(
    (code) => {
      process.exitCode = code;
    },
    (error) => {
      // A bug, or a failure nothing above names (the database dropping mid-command): one line, no stack.
      process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
