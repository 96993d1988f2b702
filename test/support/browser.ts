import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { markedEnv } from './processes';

/** Debian's chromium (.ci/run installs it); never a browser of Playwright's own download. */
export const CHROMIUM = '/usr/bin/chromium';

const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export type TestBrowser = {
  context: BrowserContext;
  page: Page;
  /** Every URL the page asked for, whatever its origin. */
  requests: string[];
  /** console.error messages and uncaught exceptions, in order. */
  errors: string[];
  close(): Promise<void>;
};

/**
 * A headless Chromium on a fresh profile folder (removed on close), at a laptop's 1280×800. Its
 * environment carries the run's mark, so the run's teardown finds it if a worker dies.
 */
export async function openBrowser(): Promise<TestBrowser> {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'tollgate-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    env: markedEnv() as Record<string, string>,
    viewport: { width: 1280, height: 800 },
    timezoneId: 'Europe/Paris',
    locale: 'en-GB',
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const requests: string[] = [];
  const errors: string[] = [];
  context.on('request', (request) => requests.push(request.url()));
  page.on('console', (message) => message.type() === 'error' && errors.push(`${message.text()} (${message.location().url})`));
  page.on('pageerror', (error) => errors.push(`uncaught: ${error.message}`));
  return {
    context,
    page,
    requests,
    errors,
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
