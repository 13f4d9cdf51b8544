/**
 * A small line chart in SVG: one series against training steps, with its range and latest value
 * written out (the label a screen reader hears, too).
 */
interface Point {
  x: number;
  y: number;
}

interface LineChartProps {
  title: string;
  points: Point[];
  /** How values are written (axis and latest value). */
  format: (value: number) => string;
  /** The x axis's name ("step"). */
  xLabel: string;
  /** What the chart says before it has two points. */
  empty: string;
  className?: string;
}

const WIDTH = 320;
const HEIGHT = 140;
const PAD = { left: 8, right: 8, top: 10, bottom: 10 };

function scale(value: number, min: number, max: number, from: number, to: number): number {
  return max === min ? (from + to) / 2 : from + ((value - min) / (max - min)) * (to - from);
}

export function LineChart({ title, points, format, xLabel, empty, className = "" }: LineChartProps) {
  const last = points.at(-1);
  if (!last || points.length < 2) {
    return (
      <figure className={`line-chart ${className}`}>
        <figcaption className="line-chart-title">{title}</figcaption>
        <p className="muted small line-chart-empty">{last ? `${format(last.y)} · ${xLabel} ${last.x}` : empty}</p>
      </figure>
    );
  }
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  const [xMin, xMax, yMin, yMax] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const at = (p: Point) =>
    `${scale(p.x, xMin, xMax, PAD.left, WIDTH - PAD.right).toFixed(1)},${scale(
      p.y,
      yMin,
      yMax,
      HEIGHT - PAD.bottom,
      PAD.top,
    ).toFixed(1)}`;
  const summary = `${title}: ${format(last.y)} (${xLabel} ${last.x}); ${format(yMin)}–${format(yMax)}`;
  const [lastX, lastY] = at(last).split(",");
  return (
    <figure className={`line-chart ${className}`}>
      <figcaption className="line-chart-title">
        {title} <strong className="line-chart-last">{format(last.y)}</strong>
      </figcaption>
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={summary} data-points={points.length}>
        <line
          className="line-chart-axis"
          x1={PAD.left}
          x2={WIDTH - PAD.right}
          y1={HEIGHT - PAD.bottom}
          y2={HEIGHT - PAD.bottom}
        />
        <polyline className="line-chart-line" points={points.map(at).join(" ")} />
        <circle className="line-chart-dot" cx={lastX} cy={lastY} r={3} />
      </svg>
      <p className="line-chart-range muted small" aria-hidden="true">
        <span>
          {format(yMin)} – {format(yMax)}
        </span>
        <span>
          {xLabel} {xMin}–{xMax}
        </span>
      </p>
    </figure>
  );
}
