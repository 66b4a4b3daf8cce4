import { formatTime } from "@/lib/format";

export type ChartPoint = { at: string; value: number | null };

const WIDTH = 600;
const HEIGHT = 160;
const PAD = { top: 8, right: 8, bottom: 20, left: 36 };

/** The SVG path of a series, broken where values are missing. */
export function linePath(points: ChartPoint[], x: (at: number) => number, y: (value: number) => number): string {
  let path = "";
  let drawing = false;
  for (const point of points) {
    if (point.value === null) {
      drawing = false;
      continue;
    }
    path += `${drawing ? "L" : "M"}${x(Date.parse(point.at)).toFixed(1)},${y(point.value).toFixed(1)}`;
    drawing = true;
  }
  return path;
}

/** A small line chart of one series over time, 0 to `max` on the y axis. */
export function TelemetryChart({ label, points, max, unit, color }: { label: string; points: ChartPoint[]; max: number; unit: string; color: string }) {
  const times = points.map((point) => Date.parse(point.at));
  const start = Math.min(...times);
  const end = Math.max(...times);
  const span = Math.max(end - start, 1);
  const x = (at: number) => PAD.left + ((at - start) / span) * (WIDTH - PAD.left - PAD.right);
  const y = (value: number) => PAD.top + (1 - Math.min(Math.max(value, 0), max) / max) * (HEIGHT - PAD.top - PAD.bottom);
  const values = points.map((point) => point.value).filter((value): value is number => value !== null);
  const latest = values.at(-1);

  if (values.length === 0) {
    return <p className="py-8 text-center text-sm text-muted-foreground">No {label.toLowerCase()} readings in this period.</p>;
  }
  return (
    <figure className="flex flex-col gap-1">
      <figcaption className="flex items-baseline justify-between text-sm">
        <span className="font-medium">{label}</span>
        <span className="text-muted-foreground tabular-nums">
          now {latest?.toFixed(0)}
          {unit} · min {Math.min(...values).toFixed(0)}
          {unit} · max {Math.max(...values).toFixed(0)}
          {unit}
        </span>
      </figcaption>
      <svg
        viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
        className="h-40 w-full"
        role="img"
        aria-label={`${label} over time, latest ${latest?.toFixed(0)}${unit}`}
        data-from={new Date(start).toISOString()}
        data-to={new Date(end).toISOString()}
      >
        {[0, 0.5, 1].map((fraction) => (
          <g key={fraction}>
            <line x1={PAD.left} x2={WIDTH - PAD.right} y1={y(max * fraction)} y2={y(max * fraction)} className="stroke-border" strokeDasharray="3 3" />
            <text x={PAD.left - 6} y={y(max * fraction) + 4} textAnchor="end" className="fill-muted-foreground text-[10px]">
              {Math.round(max * fraction)}
              {unit}
            </text>
          </g>
        ))}
        <path d={linePath(points, x, y)} fill="none" stroke={color} strokeWidth={2} strokeLinejoin="round" strokeLinecap="round" />
        {values.length === 1 ? <circle cx={x(times[points.findIndex((point) => point.value !== null)]!)} cy={y(values[0]!)} r={3} fill={color} /> : null}
        <text x={PAD.left} y={HEIGHT - 4} className="fill-muted-foreground text-[10px]">
          {formatTime(new Date(start).toISOString())}
        </text>
        <text x={WIDTH - PAD.right} y={HEIGHT - 4} textAnchor="end" className="fill-muted-foreground text-[10px]">
          {formatTime(new Date(end).toISOString())}
        </text>
      </svg>
    </figure>
  );
}
