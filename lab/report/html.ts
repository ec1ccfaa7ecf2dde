/**
 * One self-contained HTML page: inline CSS, figures as data: URIs, no script, no external request —
 * it opens from a file, an e-mail attachment or a CI artifact alike.
 */
import { RELATIVE_THROUGHPUT_ID, type ChartFile, type SkippedChart } from './charts.ts';
import { flagCellsText, type FlagGroup } from './flags.ts';
import type { ReportModel } from './model.ts';
import type { Table } from './table.ts';
import type { TcSection } from './tc-tables.ts';

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function tableHtml(t: Table, level = 2): string {
  const out: string[] = [`<section id="${esc(t.id)}"><h${level}>${esc(t.title)}</h${level}>`];
  for (const b of t.banners) out.push(`<p class="banner">${esc(b)}</p>`);
  if (t.caption) out.push(`<p class="caption">${esc(t.caption)}</p>`);
  if (t.rows.length === 0) out.push('<p><em>No data.</em></p>');
  else {
    out.push('<div class="scroll"><table><thead><tr>');
    out.push(t.header.map((h, i) => `<th class="${t.align[i] === 'r' ? 'num' : ''}">${esc(h)}</th>`).join(''));
    out.push('</tr></thead><tbody>');
    for (const [i, r] of t.rows.entries()) {
      const tcg = t.tcgRows?.[i] ?? false;
      out.push(`<tr${tcg ? ' class="tcg"' : ''}>${r.map((c, i) => `<td class="${t.align[i] === 'r' ? 'num' : ''}">${esc(c)}</td>`).join('')}</tr>`);
    }
    out.push('</tbody></table></div>');
  }
  if (t.footnotes.length > 0) out.push(`<ul class="sentences">${t.footnotes.map((f) => `<li>${esc(f)}</li>`).join('')}</ul>`);
  out.push('</section>');
  return out.join('\n');
}

function figureHtml(c: ChartFile): string {
  const src = `data:image/png;base64,${c.png.toString('base64')}`;
  return `<figure${c.tcg ? ' class="tcg"' : ''}><img src="${src}" width="${c.width}" height="${c.height}" alt="${esc(c.title)}"><figcaption>${esc(c.title)}: ${esc(c.caption)}</figcaption></figure>`;
}

const CSS = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#111;line-height:1.4}
h1{font-size:1.6rem}h2{font-size:1.3rem;margin-top:2.2rem;border-bottom:1px solid #ccc}h3{font-size:1.1rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}th,td{border:1px solid #ccc;padding:.2rem .45rem;vertical-align:top}
th{background:#f2f2f2}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.tcg td{background:#fff4f4}.scroll{overflow-x:auto}
.banner{background:#fde8e8;border-left:4px solid #b00020;padding:.4rem .7rem;font-weight:600}
p.info{background:#eef4fb;border-left:4px solid #1f77b4;padding:.4rem .7rem}
.caption{color:#444;font-size:.9rem}figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #ddd}
figure.tcg img{border:3px solid #b00020}figcaption{font-size:.9rem;color:#333}
ul.flags li{white-space:pre-line}ul.flags li .cells{color:#444}ul.flags li.warn{color:#8a1c00}ul.flags li.info{color:#1a3d66}ul.sentences li{margin:.3rem 0}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem;font-size:.9rem}dt{font-weight:600}dd{margin:0}
`;

export interface HtmlInput {
  model: ReportModel;
  runDir: string;
  headline: Table;
  /** Flags and figures not drawn, grouped by cause. */
  warnings: FlagGroup[];
  t51: Table;
  t52: Table;
  stats51: Table[];
  stats52: Table[];
  statsExtra: Table[];
  comparison: Table;
  significance: Table[];
  micro: Table[];
  latency: Table[];
  /** Round trips through each approach, one table per kernel. */
  rtt: Table[];
  /** The XDP section's round-trip figures, one per kernel. */
  rttCharts: ChartFile[];
  /** The XDP section's other figures. */
  charts: ChartFile[];
  skipped: SkippedChart[];
  /** The TC section, apart from every XDP table and figure; null without TC records. */
  tc: TcSection | null;
}

/** The TC section: its note first (per-skb numbers, no thesis beside them), then its own tables and figures. */
function tcHtml(tc: TcSection): string {
  const out = [`<h2 id="tc">${esc(tc.title)}</h2>`, `<p class="info">${esc(tc.note)}</p>`];
  out.push(tableHtml(tc.headline, 3), tableHtml(tc.t51, 3), tableHtml(tc.t52, 3));
  out.push('<h3 id="tc-figures">TC figures</h3>', ...tc.charts.map(figureHtml));
  out.push('<h3 id="tc-significance">TC significance</h3>');
  const sentences = tc.model.sentences;
  out.push(sentences.length === 0 ? '<p>No pair of TC approaches could be compared on any kernel.</p>' : `<ul class="sentences">${sentences.map((s) => `<li>${esc(s.text)}</li>`).join('')}</ul>`);
  for (const t of [...tc.significance, ...tc.stats, ...tc.micro, ...tc.latency]) out.push(tableHtml(t, 4));
  if (tc.rtt.length > 0) {
    out.push('<h3 id="tc-rtt">TC round trips</h3>', ...tc.rttCharts.map(figureHtml));
    for (const t of tc.rtt) out.push(tableHtml(t, 4));
  }
  return out.join('\n');
}

export function renderHtml(x: HtmlInput): string {
  const { model } = x;
  const fig = (id: string) => x.charts.filter((c) => c.id === id).map(figureHtml).join('\n');
  const figs = (prefix: string) => x.charts.filter((c) => c.id.startsWith(prefix)).map(figureHtml).join('\n');
  const body: string[] = [];
  body.push(`<h1>xdp-chain-lab report — ${esc(model.runId)}</h1>`);
  // The answer before anything else: what each chain costs, per kernel, and how it was measured.
  body.push(tableHtml(x.headline));
  body.push(`<p class="caption">Raw results: ${esc(x.runDir)} · kernels: ${esc(model.kernels.map((k) => k.label).join(', ') || 'none')} · approaches: ${esc(model.approaches.join(', ') || 'none')} · ${model.cells.reduce((s, c) => s + c.runs.length, 0)} runs in ${model.cells.length} cells${x.tc ? ` · TC ingress: ${esc(x.tc.model.approaches.join(', ') || 'none')} (<a href="#tc">its own section</a>)` : ''}</p>`);
  if (model.anyTcg) body.push(`<p class="banner">Kernels ${esc(model.allKernels.filter((k) => k.tcg).map((k) => k.label).join(', '))} ran under QEMU TCG (emulation): their numbers are not a performance measurement.</p>`);
  if (model.pseudoRun) body.push(`<p class="info">Thesis pseudo-run (${esc(model.pseudoRun.source)}): ${esc(model.pseudoRun.note)}</p>`);

  body.push('<h2 id="warnings">Warnings and flags</h2>');
  if (x.warnings.length === 0) body.push('<p>None.</p>');
  else {
    body.push('<ul class="flags">');
    for (const g of x.warnings) {
      const line = g.cells.length > 1 ? `${esc(g.cause)} <span class="cells">— ${g.cells.length}: ${esc(flagCellsText(g.cells))}</span>` : esc(g.text);
      body.push(`<li class="${g.level}">${esc(g.level === 'warn' ? '⚠ ' : 'ℹ ')}${line}</li>`);
    }
    body.push('</ul>');
  }

  body.push(tableHtml(x.t51));
  body.push(tableHtml(x.t52));
  body.push('<h2 id="figure-5.1">Figure 5.1</h2>');
  body.push(['fig-5.1a-throughput', RELATIVE_THROUGHPUT_ID, 'fig-5.1b-packets', 'fig-5.1c-ns-per-packet', 'fig-5.1d-cycles-per-packet'].map(fig).join('\n'));
  body.push(tableHtml(x.comparison));
  body.push('<h2 id="significance">Significance</h2>');
  if (model.sentences.length === 0) body.push('<p>No pair of approaches could be compared on any kernel.</p>');
  else body.push(`<ul class="sentences">${model.sentences.map((s) => `<li>${esc(s.text)}</li>`).join('')}</ul>`);
  for (const t of x.significance) body.push(tableHtml(t, 3));
  body.push('<h2 id="our-columns">Our columns: distributions per cell</h2>');
  body.push(figs('fig-packets-true') + figs('fig-ns-per-packet-true') + figs('fig-cycles-per-packet-true') + figs('fig-bpf-stats-ns-per-packet'));
  for (const t of [...x.stats51, ...x.stats52, ...x.statsExtra]) body.push(tableHtml(t, 3));
  if (x.micro.length > 0 || x.charts.some((c) => c.id.startsWith('micro-'))) {
    body.push('<h2 id="micro">Microbenchmarks</h2>');
    body.push(figs('micro-'));
    for (const t of x.micro) body.push(tableHtml(t, 3));
  }
  if (x.latency.length > 0) {
    body.push('<h2 id="latency">Latency</h2>');
    body.push(figs('latency-'));
    for (const t of x.latency) body.push(tableHtml(t, 3));
  }
  if (x.rtt.length > 0) {
    body.push('<h2 id="rtt">Round trips</h2>');
    body.push(...x.rttCharts.map(figureHtml));
    for (const t of x.rtt) body.push(tableHtml(t, 3));
  }
  if (x.tc) body.push(tcHtml(x.tc));
  body.push('<h2 id="provenance">Provenance</h2>');
  for (const k of model.allKernels) {
    const p = k.provenance;
    body.push(`<h3>${esc(k.label)}${k.tcg ? ' (TCG)' : ''}</h3>`);
    if (!p) {
      body.push('<p class="banner">No provenance file for this kernel.</p>');
      continue;
    }
    const items: [string, string][] = [
      ['kernel release', p.kernelRelease],
      ['kernel config sha256', p.kernelConfigSha256 ?? 'unknown'],
      ['kernel image from', p.kernelOrigin ? p.kernelOrigin.from : p.accelerator === 'host' ? 'the running kernel' : 'not recorded'],
      ...(p.kernelOrigin && p.kernelOrigin.patches.length > 0 ? ([['fix-ups applied to the source', p.kernelOrigin.patches.map((x) => x.file).join(', ')]] as [string, string][]) : []),
      ['accelerator', p.accelerator],
      ['host CPU', p.hostCpuModel],
      ['CPU frequency', `${p.cpuFrequency.mhz ?? 'unknown'} MHz, governor ${p.cpuFrequency.governor ?? 'unknown'}${p.cpuFrequency.note ? ` (${p.cpuFrequency.note})` : ''}`],
      ['isolcpus', p.isolcpus ?? 'none'],
      ['pinning', p.pinning ? `iperf3 server CPU ${p.pinning.iperfServerCpu}, client CPU ${p.pinning.iperfClientCpu}` : 'none recorded'],
      ['runs × duration', `${p.options.runs} × ${p.options.durationS} s, warm-up ${p.options.warmup ? 'yes' : 'no'}`],
      ['tools', Object.entries(p.tools).map(([t, v]) => `${t} ${v}`).join(', ') || 'not recorded'],
      ['lab commit', p.labCommit ?? 'unknown'],
      ['started', p.startedAt],
    ];
    body.push(`<dl>${items.map(([a, b]) => `<dt>${esc(a)}</dt><dd>${esc(b)}</dd>`).join('')}</dl>`);
    if (p.warnings.length > 0) body.push(`<ul class="flags">${p.warnings.map((w) => `<li class="warn">⚠ ${esc(w)}</li>`).join('')}</ul>`);
  }
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>xdp-chain-lab report — ${esc(model.runId)}</title>
<link rel="icon" href="data:,">
<style>${CSS}</style>
</head>
<body>
${body.join('\n')}
</body>
</html>
`;
}
