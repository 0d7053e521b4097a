import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/**
 * Static PNG charts without a browser: vega-lite compiles the spec to vega, a headless vega View (renderer
 * 'none') renders SVG, and resvg rasterises it with the system's DejaVu fonts (DESIGN.md section 10, "Plots").
 * Every chart sets its font to DejaVu Sans so that vega's layout and resvg's glyphs agree.
 */
export const PLOT_FONT = 'DejaVu Sans';

export interface RenderOptions {
  /** Pixel scale of the PNG relative to the SVG (default 2, for legible text). */
  readonly scale?: number;
}

export interface RenderedPng {
  readonly path: string;
  readonly width: number;
  readonly height: number;
  readonly bytes: number;
}

/** Renders a vega-lite spec to a PNG at `path` (parent directories are created). */
export async function renderVegaLitePng(spec: TopLevelSpec, path: string, options: RenderOptions = {}): Promise<RenderedPng> {
  const svg = await renderVegaLiteSvg(spec);
  const resvg = new Resvg(svg, {
    background: 'white',
    fitTo: { mode: 'zoom', value: options.scale ?? 2 },
    font: { loadSystemFonts: true, defaultFontFamily: PLOT_FONT, sansSerifFamily: PLOT_FONT },
  });
  const image = resvg.render();
  const png = image.asPng();
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, png);
  return { path, width: image.width, height: image.height, bytes: png.length };
}

/** The SVG text of a vega-lite spec (vega View, renderer 'none'). */
export async function renderVegaLiteSvg(spec: TopLevelSpec): Promise<string> {
  const { spec: vegaSpec } = compile(spec);
  const view = new View(parse(vegaSpec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const baseConfig = {
  font: PLOT_FONT,
  background: 'white',
  view: { stroke: '#ddd' },
  axis: { labelFontSize: 11, titleFontSize: 12, labelLimit: 400 },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 400 },
  title: { fontSize: 14, subtitleFontSize: 11, anchor: 'start' as const },
};

export interface ChartFrame {
  readonly title: string;
  readonly subtitle?: string | string[];
  readonly xTitle: string;
  readonly yTitle: string;
  readonly width?: number;
  readonly height?: number;
}

export interface ErrorBarPoint {
  readonly x: number;
  readonly y: number;
  /** Lower and upper ends of the error bar (e.g. mean - std, mean + std). */
  readonly lo: number;
  readonly hi: number;
  readonly series: string;
}

/**
 * One line per series over x, with a point and an error bar at each x. x is quantitative (true spacing) or, with
 * `xOrdinal`, evenly spaced categories in numeric order (for swept values like 0, 0.25, ..., 0.9, 0.95).
 */
export function lineChartWithErrorBars(
  frame: ChartFrame & {
    readonly seriesTitle: string;
    readonly yZero?: boolean;
    readonly yLog?: boolean;
    readonly xOrdinal?: boolean;
    readonly rule?: { y: number; label: string };
  },
  points: readonly ErrorBarPoint[],
): TopLevelSpec {
  const xs = uniqueSorted(points.map((p) => p.x));
  const x = frame.xOrdinal
    ? { field: 'x', type: 'ordinal' as const, title: frame.xTitle, sort: xs, axis: { labelAngle: 0 } }
    : { field: 'x', type: 'quantitative' as const, title: frame.xTitle, axis: { values: xs, format: '~g' } };
  const color = { field: 'series', type: 'nominal' as const, title: frame.seriesTitle };
  const yScale = frame.yLog ? { type: 'log' as const } : { zero: frame.yZero ?? true };
  const layers: unknown[] = [
    { mark: { type: 'line', point: { size: 50 } }, encoding: { x, y: { field: 'y', type: 'quantitative', title: frame.yTitle, scale: yScale }, color } },
    { mark: { type: 'errorbar', ticks: { size: 12 } }, encoding: { x, y: { field: 'lo', type: 'quantitative', title: frame.yTitle, scale: yScale }, y2: { field: 'hi' }, color } },
  ];
  if (frame.rule) {
    layers.push({
      data: { values: [{ y: frame.rule.y, label: frame.rule.label }] },
      layer: [
        { mark: { type: 'rule', strokeDash: [4, 4], color: '#888' }, encoding: { y: { field: 'y', type: 'quantitative' } } },
        { mark: { type: 'text', align: 'left', dx: 4, dy: -6, color: '#666', fontSize: 10 }, encoding: { y: { field: 'y', type: 'quantitative' }, x: { value: 0 }, text: { field: 'label' } } },
      ],
    });
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: frame.title, subtitle: frame.subtitle },
    width: frame.width ?? 480,
    height: frame.height ?? 300,
    data: { values: points.map((p) => ({ ...p })) },
    layer: layers,
    config: baseConfig,
  } as TopLevelSpec;
}

export interface BarDatum {
  /** Position on the x axis. */
  readonly group: string;
  /** Bar within the group (colour). */
  readonly category: string;
  readonly value: number;
  readonly lo?: number;
  readonly hi?: number;
}

/** Bars grouped along x, one bar per category inside each group, optional error bars. */
export function groupedBarChart(
  frame: ChartFrame & { readonly categoryTitle: string; readonly groupOrder?: readonly string[]; readonly categoryOrder?: readonly string[]; readonly rule?: { y: number; label: string } },
  bars: readonly BarDatum[],
): TopLevelSpec {
  const x = { field: 'group', type: 'nominal' as const, title: frame.xTitle, sort: frame.groupOrder, axis: { labelAngle: -35 } };
  const xOffset = { field: 'category', type: 'nominal' as const, sort: frame.categoryOrder };
  const color = { field: 'category', type: 'nominal' as const, title: frame.categoryTitle, sort: frame.categoryOrder };
  const layers: unknown[] = [
    { mark: 'bar', encoding: { x, xOffset, color, y: { field: 'value', type: 'quantitative', title: frame.yTitle } } },
  ];
  if (bars.some((b) => b.lo !== undefined && b.hi !== undefined)) {
    layers.push({
      transform: [{ filter: 'isValid(datum.lo) && isValid(datum.hi)' }],
      mark: { type: 'rule', color: '#333' },
      encoding: { x, xOffset, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } },
    });
  }
  if (frame.rule) {
    layers.push({
      data: { values: [{ y: frame.rule.y }] },
      mark: { type: 'rule', strokeDash: [4, 4], color: '#888' },
      encoding: { y: { field: 'y', type: 'quantitative' } },
    });
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: frame.title, subtitle: frame.subtitle },
    width: frame.width ?? 640,
    height: frame.height ?? 300,
    data: { values: bars.map((b) => ({ ...b, lo: b.lo ?? null, hi: b.hi ?? null })) },
    layer: layers,
    config: baseConfig,
  } as TopLevelSpec;
}

export interface SeriesPoint {
  readonly t: number;
  readonly value: number;
  readonly series: string;
}

/** Time series, one line per series, with a vertical rule at `ruleAt` (e.g. the drift at t0). */
export function timeSeriesChart(
  frame: ChartFrame & { readonly seriesTitle: string; readonly ruleAt?: number; readonly ruleLabel?: string; readonly yLog?: boolean; readonly seriesOrder?: readonly string[] },
  points: readonly SeriesPoint[],
): TopLevelSpec {
  const layers: unknown[] = [
    {
      mark: { type: 'line', strokeWidth: 1.5, clip: true },
      encoding: {
        x: { field: 't', type: 'quantitative', title: frame.xTitle },
        y: { field: 'value', type: 'quantitative', title: frame.yTitle, scale: frame.yLog ? { type: 'log' } : { zero: true } },
        color: { field: 'series', type: 'nominal', title: frame.seriesTitle, sort: frame.seriesOrder },
      },
    },
  ];
  if (frame.ruleAt !== undefined) {
    layers.push({
      data: { values: [{ t: frame.ruleAt, label: frame.ruleLabel ?? '' }] },
      layer: [
        { mark: { type: 'rule', color: '#c00', strokeDash: [5, 3] }, encoding: { x: { field: 't', type: 'quantitative' } } },
        { mark: { type: 'text', align: 'left', baseline: 'top', dx: 4, dy: 4, color: '#c00', fontSize: 11 }, encoding: { x: { field: 't', type: 'quantitative' }, y: { value: 0 }, text: { field: 'label' } } },
      ],
    });
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: frame.title, subtitle: frame.subtitle },
    width: frame.width ?? 640,
    height: frame.height ?? 300,
    data: { values: points.map((p) => ({ ...p })) },
    layer: layers,
    config: baseConfig,
  } as TopLevelSpec;
}

function uniqueSorted(values: readonly number[]): number[] {
  return [...new Set(values)].sort((a, b) => a - b);
}
