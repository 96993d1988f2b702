import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type Gate = 'ip' | 'auth-failures' | 'operation' | 'field' | 'concurrency';

/**
 * Prometheus metrics. Labels come only from small closed sets (status codes, gate names, reasons)
 * or from the schema (field coordinates): never a key id or a secret, so cardinality stays
 * bounded however many keys call.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({ name: 'tollgate_requests_total', help: 'GraphQL HTTP requests by status and operation type', labelNames: ['status', 'operation_type'], registers: [this.registry] });
  private readonly authFailures = new Counter({ name: 'tollgate_auth_failures_total', help: 'Failed authentications by reason', labelNames: ['reason'], registers: [this.registry] });
  private readonly rejections = new Counter({ name: 'tollgate_rate_limit_rejections_total', help: 'Requests or fields refused by a gate', labelNames: ['gate', 'coordinate'], registers: [this.registry] });
  private readonly storeLatency = new Histogram({
    name: 'tollgate_limiter_store_duration_seconds',
    help: 'Limiter store call latency',
    labelNames: ['store', 'call'],
    buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
    registers: [this.registry],
  });
  private readonly storeFailures = new Counter({ name: 'tollgate_limiter_store_failures_total', help: 'Limiter store commands that failed (unreachable or timed out), whatever answered instead', labelNames: ['store', 'call'], registers: [this.registry] });
  private readonly operationCost = new Histogram({
    name: 'tollgate_operation_cost_points',
    help: 'Requested cost of operations, in points',
    buckets: [0, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000],
    registers: [this.registry],
  });
  private readonly keyCache = new Counter({ name: 'tollgate_key_cache_lookups_total', help: 'API key cache lookups', labelNames: ['result'], registers: [this.registry] });
  private readonly dbQueries = new Counter({ name: 'tollgate_db_queries_total', help: 'SQL statements sent to the database', registers: [this.registry] });
  private readonly usageWrites = new Counter({ name: 'tollgate_usage_writes_total', help: 'Usage history flushes to Postgres by result (a failed one is retried with the next)', labelNames: ['result'], registers: [this.registry] });
  private readonly webhookDeliveries = new Counter({ name: 'tollgate_webhook_deliveries_total', help: 'Webhook delivery attempts by result (delivered, retry, failed: gave up)', labelNames: ['result'], registers: [this.registry] });
  private readonly logDrops = new Counter({ name: 'tollgate_log_lines_dropped_total', help: 'Log lines dropped because stdout was not being read (see log-destination.ts)', registers: [this.registry] });

  /** Redis commands the limiter store sent (a script call is one), read from the store when scraped. */
  countRedisCommands(read: () => number) {
    new Gauge({ name: 'tollgate_redis_commands_total', help: 'Redis commands the limiter store has sent, counted at the client (a script call is one command)', registers: [this.registry], collect() { this.set(read()); } });
  }

  constructor(private readonly knownCoordinates: ReadonlySet<string> = new Set()) {
    collectDefaultMetrics({ register: this.registry });
  }

  request(status: number, operationType = 'none') {
    this.requests.inc({ status: String(status), operation_type: operationType });
  }
  authFailure(reason: string) {
    this.authFailures.inc({ reason });
  }
  rejected(gate: Gate, coordinate = '') {
    // Only schema coordinates become labels.
    this.rejections.inc({ gate, coordinate: this.knownCoordinates.has(coordinate) ? coordinate : '' });
  }
  storeCall(store: string, call: string, seconds: number) {
    this.storeLatency.observe({ store, call }, seconds);
  }
  storeFailure(store: string, call: string) {
    this.storeFailures.inc({ store, call });
  }
  cost(points: number) {
    this.operationCost.observe(points);
  }
  keyLookup(hit: boolean) {
    this.keyCache.inc({ result: hit ? 'hit' : 'miss' });
  }
  dbQuery() {
    this.dbQueries.inc();
  }
  usageWritten(failed: boolean) {
    this.usageWrites.inc({ result: failed ? 'failed' : 'written' });
  }
  webhookDelivery(result: 'delivered' | 'retry' | 'failed') {
    this.webhookDeliveries.inc({ result });
  }
  logLineDropped() {
    this.logDrops.inc();
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
