import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { compact } from './format';

export type Bucket = { start: string; operations: number; refused: number; points: number };

const STEP_S: Record<string, number> = { MINUTE: 60, HOUR: 3600, DAY: 86_400 };

/**
 * Operations, points and refusals over time (uPlot, in the viewer's time zone). Empty buckets are
 * left out of the history: they are put back as zeros so a quiet hour reads as quiet.
 */
export function UsageChart({ buckets, from, to, granularity }: { buckets: Bucket[]; from: Date; to: Date; granularity: string }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const step = STEP_S[granularity];
    const byStart = new Map(buckets.map((b) => [Date.parse(b.start) / 1000, b]));
    const x: number[] = [];
    for (let t = Math.floor(from.getTime() / 1000 / step) * step; t < to.getTime() / 1000; t += step) x.push(t);
    const pick = (field: keyof Omit<Bucket, 'start'>) => x.map((t) => byStart.get(t)?.[field] ?? 0);
    const plot = new uPlot(
      {
        width: Math.max(box.current!.clientWidth, 600),
        height: 280,
        scales: { x: { time: true }, points: { auto: true } },
        series: [
          {},
          { label: 'Operations', stroke: '#0b57d0', width: 2, value: (_u, v) => compact(v) },
          { label: 'Points', stroke: '#116329', width: 2, scale: 'points', value: (_u, v) => compact(v) },
          { label: 'Refused', stroke: '#a40e26', width: 2, dash: [6, 4], value: (_u, v) => compact(v) },
        ],
        axes: [{}, { label: 'operations', values: (_u, ticks) => ticks.map(compact) }, { scale: 'points', side: 1, label: 'points', grid: { show: false }, values: (_u, ticks) => ticks.map(compact) }],
      },
      [x, pick('operations'), pick('points'), pick('refused')],
      box.current!,
    );
    return () => plot.destroy();
  }, [buckets, from.getTime(), to.getTime(), granularity]);
  const sum = (f: 'operations' | 'points' | 'refused') => buckets.reduce((s, b) => s + b[f], 0);
  return (
    <figure class="chart">
      <div ref={box} role="img" aria-label={`Usage chart: ${sum('operations')} operations, ${sum('points')} points, ${sum('refused')} refused in the range.`} />
      <figcaption>
        In this range: <strong data-total="operations">{compact(sum('operations'))}</strong> operations, <strong data-total="points">{compact(sum('points'))}</strong> points, <strong data-total="refused">{compact(sum('refused'))}</strong> refused.
      </figcaption>
    </figure>
  );
}
