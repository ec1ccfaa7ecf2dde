/**
 * Drawing, whatever the figure shows: the one Chart.js renderer, whiskers drawn by a small plugin
 * (Chart.js has none, and the thesis's figures showing none is what this lab fixes), the interval a
 * whisker spans, and one bar chart.
 */
import { ChartJSNodeCanvas } from 'chartjs-node-canvas';
import type { ChartConfiguration, Plugin } from 'chart.js';
import type { Summary } from './stats.ts';


/** Every figure is drawn once at its canvas size, without animation: the bytes depend on the data only. */
export const CANVAS_OPTIONS = { responsive: false, animation: false, devicePixelRatio: 1, layout: { padding: { right: 20, left: 4 } } } as const;

export const CHART_WIDTH = 1000;
export const CHART_HEIGHT = 560;

export type ErrorBarKind = 'iqr' | 'ci';

export type Interval = [number, number] | null;

/** Draws a whisker with caps over every bar or point that has an interval. */
export function errorBarPlugin(errors: Interval[][]): Plugin {
  return {
    id: 'errorBars',
    afterDatasetsDraw(chart) {
      const { ctx } = chart;
      const y = chart.scales.y;
      if (!y) return;
      chart.data.datasets.forEach((_, di) => {
        const meta = chart.getDatasetMeta(di);
        if (meta.hidden) return;
        meta.data.forEach((el, i) => {
          const e = errors[di]?.[i];
          if (!e) return;
          const barWidth = (el as unknown as { width?: number }).width;
          const cap = Math.max(3, Math.min(8, (barWidth ?? 16) / 4));
          const top = y.getPixelForValue(e[1]);
          const bottom = y.getPixelForValue(e[0]);
          ctx.save();
          ctx.strokeStyle = '#111';
          ctx.lineWidth = 1.5;
          ctx.beginPath();
          ctx.moveTo(el.x, top);
          ctx.lineTo(el.x, bottom);
          ctx.moveTo(el.x - cap, top);
          ctx.lineTo(el.x + cap, top);
          ctx.moveTo(el.x - cap, bottom);
          ctx.lineTo(el.x + cap, bottom);
          ctx.stroke();
          ctx.restore();
        });
      });
    },
  };
}

export function interval(s: Summary | undefined, kind: ErrorBarKind): Interval {
  if (!s || s.n < 2) return null;
  if (kind === 'ci') return s.ci;
  return [s.q1, s.q3];
}

let renderer: ChartJSNodeCanvas | null = null;
export function canvas(): ChartJSNodeCanvas {
  // One instance: each one loads its own copy of Chart.js.
  renderer ??= new ChartJSNodeCanvas({ width: CHART_WIDTH, height: CHART_HEIGHT, backgroundColour: 'white' });
  return renderer;
}

export interface BarSpec {
  id: string;
  title: string;
  yLabel: string;
  xLabel: string;
  /** An array is a label on several lines. */
  labels: (string | string[])[];
  datasets: { label: string; color: string; data: (number | null)[]; errors: Interval[] }[];
  subtitle: string[];
  warn: boolean;
}

export async function renderBar(spec: BarSpec): Promise<Buffer> {
  const top = Math.max(0, ...spec.datasets.flatMap((d) => d.data.map((v, i) => Math.max(v ?? 0, d.errors[i]?.[1] ?? 0))));
  const config: ChartConfiguration = {
    type: 'bar',
    data: {
      labels: spec.labels,
      datasets: spec.datasets.map((d) => ({ label: d.label, data: d.data, backgroundColor: d.color, borderColor: d.color, borderWidth: 1 })),
    },
    options: {
      ...CANVAS_OPTIONS,
      plugins: {
        title: { display: true, text: spec.title, font: { size: 18, weight: 'bold' }, color: '#111' },
        subtitle: {
          display: true,
          text: spec.subtitle,
          font: { size: 13, weight: spec.warn ? 'bold' : 'normal' },
          color: spec.warn ? '#b00020' : '#333',
          padding: { bottom: 8 },
        },
        legend: { position: 'top', labels: { font: { size: 13 }, color: '#111' } },
      },
      scales: {
        x: { title: { display: true, text: spec.xLabel, font: { size: 14 }, color: '#111' }, ticks: { font: { size: 13 }, color: '#111' } },
        y: {
          beginAtZero: true,
          suggestedMax: top * 1.05,
          title: { display: true, text: spec.yLabel, font: { size: 14 }, color: '#111' },
          ticks: { font: { size: 12 }, color: '#111' },
        },
      },
    },
    plugins: [errorBarPlugin(spec.datasets.map((d) => d.errors))],
  };
  return canvas().renderToBuffer(config);
}
