import type { parseArgs } from 'node:util';
import type { AdminApi } from './transport';

/** Every option of every command (node's parseArgs: an unknown one is refused). */
export const OPTIONS = {
  name: { type: 'string' },
  scopes: { type: 'string' },
  expires: { type: 'string' },
  grace: { type: 'string' },
  all: { type: 'boolean' },
  consumer: { type: 'string' },
  'allowed-ips': { type: 'string' },
  'allowed-origins': { type: 'string' },
  budget: { type: 'string' },
  limits: { type: 'string' },
  quotas: { type: 'string' },
  'max-cost': { type: 'string' },
  'external-id': { type: 'string' },
  plan: { type: 'string' },
  'no-key': { type: 'boolean' },
  search: { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
  granularity: { type: 'string' },
  fields: { type: 'boolean' },
  refusals: { type: 'boolean' },
  by: { type: 'string' },
  first: { type: 'string' },
  key: { type: 'string' },
  target: { type: 'string' },
  json: { type: 'boolean' },
  url: { type: 'string' },
  'key-stdin': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

export type Context = {
  values: Values;
  /** The id after the command (`revoke <id>`); commands that need one are given it. */
  id: string;
  /** Opens the admin API (the database, or the server at --url): after the arguments are read. */
  admin(): Promise<AdminApi>;
  /** Prints the value as JSON with --json, else the lines `text` makes of it. */
  print<T>(value: T, text: (value: T) => string[]): void;
  /** Text output only (a note beside the result); nothing with --json. */
  note(line: string): void;
};

export type Command = {
  run(ctx: Context): Promise<void>;
  /** `id`: needs `<id>` after the command, named as given (e.g. "a key id"). */
  id?: string;
};
