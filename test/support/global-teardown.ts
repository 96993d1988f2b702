// Stops and drops what global-setup made for this run (its redis-server and cluster, its
// databases, anything a test left running); see global-setup.ts.
export default async function globalTeardown() {
  await (globalThis as { tollgateRun?: { teardown(): Promise<void> } }).tollgateRun?.teardown();
}
