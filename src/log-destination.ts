/** How much log output may wait for a reader before lines are dropped: ~16 000 access-log lines. */
export const LOG_BACKLOG_LIMIT_BYTES = 8 * 1024 * 1024;

/**
 * The default log destination: stdout, with a bound on what waits for its reader. pino writes
 * without backpressure, and on a pipe Node queues what the reader has not taken yet, so a log
 * collector that stops reading (stuck, paused, gone) would grow this process until it dies. Past
 * the bound a line is dropped and counted instead; the next line that fits is preceded by one
 * warning that says how many were lost since the last warning. Writes to a file or a terminal
 * never wait, so there nothing is ever dropped.
 */
export function boundedStdout(onDropped: () => void, out: NodeJS.WriteStream = process.stdout, limit = LOG_BACKLOG_LIMIT_BYTES) {
  let dropped = 0;
  return {
    write(line: string): boolean {
      if (out.writableLength + line.length > limit) {
        dropped++;
        onDropped();
        return false;
      }
      if (dropped) {
        out.write(`${JSON.stringify({ level: 40, time: new Date().toISOString(), msg: 'log lines dropped: stdout was not being read', droppedLines: dropped })}\n`);
        dropped = 0;
      }
      return out.write(line);
    },
  };
}
