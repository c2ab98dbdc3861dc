// Turns the benchmark's results (as saved in bench/results/*.json) into the markdown tables of
// bench/README.md: one row per configuration and server, a ratio row (ours/naive), the soak's RSS
// over time, the burst's answers and first frames, and the acceptance targets with PASS/FAIL.
import type { BurstStats, LoadStats, Percentiles, ServerStatsMessage } from './protocol';
import { percentiles } from './protocol';

export type ServerName = 'ours' | 'naive';

export interface RssSample {
  /** Seconds since the measurement window started (negative: warm-up). */
  t: number;
  mib: number;
}

export interface RunResult {
  server: ServerName;
  fast: number;
  slow: number;
  soak: boolean;
  /** The burst configuration: every request at one instant, fresh server, bcrypt cost 12. */
  burst?: boolean;
  load?: LoadStats;
  /** Burst only: server CPU and wall time from the requests going out until every viewer was settled, ms. */
  burstCpuMs?: number;
  burstWallMs?: number;
  /** Burst only: the server's peak RSS from the burst to the window's start, MiB. */
  rssBurstMax?: number;
  /** Burst only: the replay and the event loop from the burst until every viewer was settled. */
  burstReplay?: ServerStatsMessage['replay'];
  burstHealth?: Pick<ServerStatsMessage, 'loopDelay' | 'gc'>;
  /** Server CPU during the window, ms, and the part of it spent in the kernel. */
  serverCpuMs?: number;
  serverSysMs?: number;
  cpuPerFrameMs?: number;
  rss: RssSample[];
  rssStart?: number;
  rssEnd?: number;
  rssMax?: number;
  /** Robust growth over the window: median of the last samples minus median of the first, MiB. */
  rssGrowth?: number;
  /** Set when the server passed the RSS cap and was killed. */
  exceeded?: { t: number; mib: number };
  /** Replay timing, memory, event-loop delay and GC of the server during the window. */
  replay?: ServerStatsMessage['replay'];
  memory?: NodeJS.MemoryUsage;
  health?: Pick<ServerStatsMessage, 'loopDelay' | 'gc'>;
  /** CPU the rest of the machine used during the window (100% = one core). */
  otherCpuPercent?: number;
  error?: string;
}

export interface BenchResults {
  meta: {
    date: string;
    node: string;
    cpu: string;
    cores: number;
    quick: boolean;
    corpus: { frames: number; width: number; height: number; quality: number; averageBytes: number };
    windowSeconds: number;
    soakSeconds: number;
    rssCapMiB: number;
    durationSeconds?: number;
  };
  runs: RunResult[];
}

const f = (n: number | undefined, digits = 1): string =>
  n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(digits);

/** ours/naive; '–' when either is missing or not positive (a ratio of a shrinking RSS means nothing). */
function ratio(ours: number | undefined, naive: number | undefined, digits = 2): string {
  if (ours === undefined || naive === undefined || !Number.isFinite(ours) || !Number.isFinite(naive) || ours < 0 || naive <= 0) return '–';
  return `${(ours / naive).toFixed(digits)}×`;
}

const minOf = (values: number[] | undefined): number | undefined => (values?.length ? Math.min(...values) : undefined);

function medianOf(values: number[] | undefined): number | undefined {
  if (!values?.length) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.ceil(sorted.length / 2) - 1];
}

const pair = (p: Percentiles | undefined, a: keyof Percentiles, b: keyof Percentiles, digits = 1): string =>
  p && p.count > 0 ? `${f(p[a], digits)} / ${f(p[b], digits)}` : '–';

function label(run: RunResult): string {
  return `${run.burst ? 'burst: ' : ''}${run.fast} fast${run.slow ? ` + ${run.slow} slow` : ''}`;
}

function rssCell(run: RunResult): string {
  if (run.rssStart === undefined) return '–';
  const end = run.exceeded ? `**exceeded ${f(run.exceeded.mib, 0)} at ${f(run.exceeded.t, 0)} s**` : f(run.rssEnd, 0);
  return `${f(run.rssStart, 0)} → ${end} (max ${f(run.rssMax, 0)})`;
}

const TABLE_HEAD =
  '| viewers | server | fps min / median | lost | latency ms | CPU ms/frame (server / client CPU) | RSS MiB | snapshot ms | first frame ms | slow fps / age |';
const TABLE_RULE = '|---|---|---|---|---|---|---|---|---|---|';

function cpuCell(run: RunResult): string {
  const load = run.load;
  if (run.cpuPerFrameMs === undefined || !load) return '–';
  const percent = (ms: number | undefined): string => `${f(ms === undefined ? undefined : (ms / load.windowMs) * 100, 0)}%`;
  return `${f(run.cpuPerFrameMs, 3)} (${percent(run.serverCpuMs)} / ${percent(load.clientCpuMs)})`;
}

function mainRow(run: RunResult): string {
  const load = run.load;
  const slow =
    load && run.slow > 0 ? `${f(medianOf(load.slowFps), 2)} / ${f(load.slowAge.p50 / 1000, 1)} s (max ${f(load.slowAge.max / 1000, 1)} s)` : '–';
  return [
    label(run),
    run.server,
    load ? `${f(minOf(load.fastFps))} / ${f(medianOf(load.fastFps))}` : run.error ?? '–',
    load ? String(load.fastLost) : '–',
    pair(load?.latency, 'p50', 'p99'),
    cpuCell(run),
    rssCell(run),
    pair(load?.snapshot, 'p50', 'p99'),
    pair(load?.firstFrame, 'p50', 'p99'),
    slow,
  ].join(' | ');
}

function ratioRow(ours: RunResult, naive: RunResult): string {
  const a = ours.load;
  const b = naive.load;
  return [
    '',
    '*ours/naive*',
    ratio(medianOf(a?.fastFps), medianOf(b?.fastFps)),
    '',
    `${ratio(a?.latency.p50, b?.latency.p50)} / ${ratio(a?.latency.p99, b?.latency.p99)}`,
    ratio(ours.cpuPerFrameMs, naive.cpuPerFrameMs),
    ratio(ours.rssEnd, naive.exceeded ? naive.exceeded.mib : naive.rssEnd),
    `${ratio(a?.snapshot?.p50, b?.snapshot?.p50)} / ${ratio(a?.snapshot?.p99, b?.snapshot?.p99)}`,
    `${ratio(a?.firstFrame?.p50, b?.firstFrame?.p50)} / ${ratio(a?.firstFrame?.p99, b?.firstFrame?.p99)}`,
    '',
  ].join(' | ');
}

function find(results: BenchResults, server: ServerName, fast: number, slow: number, soak: boolean, burst = false): RunResult | undefined {
  return results.runs.find((r) => r.server === server && r.fast === fast && r.slow === slow && r.soak === soak && (r.burst ?? false) === burst);
}

/** A burst's answers: how many viewers got the stream, the refusals by kind, times to status and first frame. */
export function burstSummary(burst: BurstStats): {
  total: number;
  ok: number;
  byKind: { '401': number; '429': number; '503': number; other: number; noAnswer: number };
  refusals: string;
  head: Percentiles;
  firstFrame: Percentiles;
} {
  const byKind = { '401': 0, '429': 0, '503': 0, other: 0, noAnswer: 0 };
  let ok = 0;
  for (const v of burst.viewers) {
    if (v.firstFrameMs !== undefined && v.status === 200) ok++;
    else if (v.status === 401 || v.status === 429 || v.status === 503) byKind[String(v.status) as '401' | '429' | '503']++;
    else if (v.status !== undefined && v.status !== 200) byKind.other++;
    else byKind.noAnswer++; // a connection error, a close or a timeout before any answer (or a 200 without a frame)
  }
  const refusals = [
    byKind['401'] && `${byKind['401']}× 401`,
    byKind['429'] && `${byKind['429']}× 429`,
    byKind['503'] && `${byKind['503']}× 503`,
    byKind.other && `${byKind.other}× other status`,
    byKind.noAnswer && `${byKind.noAnswer}× no stream (connection error or timeout)`,
  ]
    .filter(Boolean)
    .join(', ');
  return {
    total: burst.viewers.length,
    ok,
    byKind,
    refusals,
    head: percentiles(burst.viewers.flatMap((v) => (v.headMs === undefined ? [] : [v.headMs]))),
    firstFrame: percentiles(burst.viewers.flatMap((v) => (v.firstFrameMs === undefined ? [] : [v.firstFrameMs]))),
  };
}

/** Frames the replay emitted per second during the window (the corpus should go out at 30 fps). */
function replayFps(run: RunResult): number | undefined {
  return run.replay && run.load ? run.replay.emitted / (run.load.windowMs / 1000) : undefined;
}

/**
 * Issue 11's target for the burst: every viewer answered 200 and got the stream, every fast
 * viewer >= 29 fps in the window, and the replay kept 30 fps (>= 29.5 frames a second emitted,
 * none skipped, during the burst or the window).
 */
export function burstVerdict(run: RunResult): { pass: boolean; why: string[] } {
  const why: string[] = [];
  const load = run.load;
  if (!load?.burst) return { pass: false, why: [`no data${run.error ? `: ${run.error}` : ''}`] };
  const b = burstSummary(load.burst);
  why.push(`${b.ok}/${b.total} answered 200 and streamed${b.refusals ? ` (refused or failed: ${b.refusals})` : ''}`);
  const slowest = minOf(load.fastFps);
  const fastOk = load.fastFps.length === run.fast && slowest !== undefined && slowest >= 29;
  why.push(`slowest fast viewer ${f(slowest)} fps${fastOk ? '' : ' (target >= 29)'}`);
  const rate = replayFps(run);
  const skipped = (run.replay?.skipped ?? 0) + (run.burstReplay?.skipped ?? 0);
  const replayOk = rate !== undefined && rate >= 29.5 && skipped === 0;
  why.push(`replay ${f(rate)} fps, ${skipped} skipped`);
  return { pass: b.ok === b.total && b.total === run.fast + run.slow && fastOk && replayOk, why };
}

interface Target {
  name: string;
  ours?: number;
  naive?: number;
  /** How the value is shown. */
  unit: string;
  digits?: number;
  pass: (value: number) => boolean;
  where: string;
  /** Extra words for the naive column (e.g. "exceeded"). */
  naiveNote?: string;
}

function targets(results: BenchResults): Target[] {
  const list: Target[] = [];
  const ours50 = find(results, 'ours', 50, 0, false);
  const naive50 = find(results, 'naive', 50, 0, false);
  list.push({
    name: 'With 50 viewers every viewer gets >= 29 fps (slowest viewer)',
    ours: minOf(ours50?.load?.fastFps),
    naive: minOf(naive50?.load?.fastFps),
    unit: 'fps',
    pass: (v) => v >= 29,
    where: '50 fast',
  });
  // The worst configuration counts for the latency targets.
  const worst = (server: ServerName, pick: (s: LoadStats) => number | undefined): { value?: number; where: string } => {
    let value: number | undefined;
    let where = '';
    for (const run of results.runs) {
      if (run.server !== server || run.soak || !run.load) continue;
      const v = pick(run.load);
      if (v !== undefined && Number.isFinite(v) && (value === undefined || v > value)) {
        value = v;
        where = label(run);
      }
    }
    return { value, where };
  };
  const snapOurs = worst('ours', (s) => s.snapshot?.p50);
  const snapNaive = worst('naive', (s) => s.snapshot?.p50);
  list.push({
    name: 'Snapshot p50 <= 10 ms while streaming (worst configuration)',
    ours: snapOurs.value,
    naive: snapNaive.value,
    unit: 'ms',
    pass: (v) => v <= 10,
    where: `ours: ${snapOurs.where}; naive: ${snapNaive.where}`,
  });
  const ttffOurs = worst('ours', (s) => s.firstFrame?.p50);
  const ttffNaive = worst('naive', (s) => s.firstFrame?.p50);
  list.push({
    name: "A new viewer's first frame <= 50 ms (p50, worst configuration)",
    ours: ttffOurs.value,
    naive: ttffNaive.value,
    unit: 'ms',
    pass: (v) => v <= 50,
    where: `ours: ${ttffOurs.where}; naive: ${ttffNaive.where}`,
  });
  const soakOurs = results.runs.find((r) => r.server === 'ours' && r.soak);
  const soakNaive = results.runs.find((r) => r.server === 'naive' && r.soak);
  const soakWhere = soakOurs ? `soak: ${label(soakOurs)}, ${results.meta.soakSeconds} s` : 'soak';
  list.push({
    name: 'With 2 slow viewers the fast ones lose nothing (frames lost)',
    ours: soakOurs?.load?.fastLost,
    naive: soakNaive?.load?.fastLost,
    unit: 'frames',
    digits: 0,
    pass: (v) => v === 0,
    where: soakWhere,
    naiveNote: soakNaive?.exceeded ? ' (killed: RSS cap)' : '',
  });
  const mb = (mib: number | undefined): number | undefined => (mib === undefined ? undefined : (mib * 2 ** 20) / 1e6);
  list.push({
    name: `With 2 slow viewers RSS grows < 20 MB over ${results.meta.soakSeconds} s`,
    ours: mb(soakOurs?.rssGrowth),
    naive: mb(soakNaive?.exceeded ? soakNaive.exceeded.mib - (soakNaive.rssStart ?? 0) : soakNaive?.rssGrowth),
    unit: 'MB',
    pass: (v) => v < 20,
    where: soakWhere,
    naiveNote: soakNaive?.exceeded ? ` (exceeded the ${results.meta.rssCapMiB} MiB cap at ${f(soakNaive.exceeded.t, 0)} s)` : '',
  });
  return list;
}

/** The burst configuration's own table: answers, refusals, first frames, and the login's cost. */
function burstSection(results: BenchResults): string[] {
  const runs = results.runs.filter((r) => r.burst);
  const [first] = runs;
  if (!first) return [];
  const lines = [
    '',
    `### Burst: ${first.fast} fast + ${first.slow} slow viewers connecting at once to a fresh server`,
    '',
    'Every viewer\'s TCP connection is opened first; then all the requests (the same correct login) are written in one go, ' +
      'to a server started for this run (no login remembered) whose users file has bcrypt cost 12. answered: viewers ' +
      'that got 200 and a first frame; refused: the others, by answer. status / first frame: from the requests going ' +
      'out to the response head / the first whole frame, over every viewer that got one. fps, lost: the fast viewers ' +
      'in the measurement window that follows (after the warm-up). replay: frames the server\'s camera stand-in emitted ' +
      'per second in the window, and frames it skipped (burst + window). burst CPU: the server\'s CPU from the requests ' +
      'going out until every viewer had its first frame or had been refused, and that wall time. loop max: the ' +
      'longest event-loop delay in that time. RSS: peak from the burst to the window, and at the window\'s end.',
    '',
    '| server | answered | refused (401 / 429 / 503 / other / no answer) | status ms p50 / max | first frame ms p50 / p99 / max | fps min / median | lost | replay fps, skipped | burst CPU ms / wall ms | loop max ms | RSS MiB peak / end | slow fps |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  const row = (run: RunResult): string => {
    const load = run.load;
    const b = load?.burst && burstSummary(load.burst);
    if (!load || !b) return `| ${run.server} | ${run.error ?? 'no data'} |  |  |  |  |  |  |  |  |  |  |`;
    const k = b.byKind;
    const skipped = (run.replay?.skipped ?? 0) + (run.burstReplay?.skipped ?? 0);
    return [
      '',
      run.server,
      `${b.ok} / ${b.total}`,
      `${k['401']} / ${k['429']} / ${k['503']} / ${k.other} / ${k.noAnswer}`,
      b.head.count ? `${f(b.head.p50, 0)} / ${f(b.head.max, 0)}` : '–',
      b.firstFrame.count ? `${f(b.firstFrame.p50, 0)} / ${f(b.firstFrame.p99, 0)} / ${f(b.firstFrame.max, 0)}` : '–',
      `${f(minOf(load.fastFps))} / ${f(medianOf(load.fastFps))}`,
      String(load.fastLost),
      `${f(replayFps(run))}, ${skipped}`,
      `${f(run.burstCpuMs, 0)} / ${f(run.burstWallMs, 0)}`,
      f(run.burstHealth?.loopDelay.max),
      `${f(run.rssBurstMax, 0)} / ${f(run.rssEnd, 0)}`,
      run.slow ? load.slowFps.map((x) => f(x, 2)).join(', ') : '–',
      '',
    ]
      .join(' | ')
      .trim();
  };
  for (const ours of runs.filter((r) => r.server === 'ours')) {
    const naive = find(results, 'naive', ours.fast, ours.slow, false, true);
    lines.push(row(ours));
    if (naive) lines.push(row(naive));
    const a = ours.load?.burst && burstSummary(ours.load.burst);
    const b = naive?.load?.burst && burstSummary(naive.load.burst);
    if (naive && a && b) {
      lines.push(
        `| *ours/naive* |  |  | ${ratio(a.head.p50, b.head.p50)} / ${ratio(a.head.max, b.head.max)} | ` +
          `${ratio(a.firstFrame.p50, b.firstFrame.p50)} / ${ratio(a.firstFrame.p99, b.firstFrame.p99)} / ${ratio(a.firstFrame.max, b.firstFrame.max)} | ` +
          `${ratio(medianOf(ours.load?.fastFps), medianOf(naive.load?.fastFps))} |  |  | ${ratio(ours.burstCpuMs, naive.burstCpuMs)} / ${ratio(ours.burstWallMs, naive.burstWallMs)} |  | ` +
          `${ratio(ours.rssBurstMax, naive.rssBurstMax)} / ${ratio(ours.rssEnd, naive.rssEnd)} |  |`,
      );
    }
    const verdict = (run: RunResult | undefined): string => {
      if (!run) return 'not run';
      const v = burstVerdict(run);
      return `**${v.pass ? 'PASS' : 'FAIL'}** (${v.why.join('; ')})`;
    };
    lines.push('', `Target (issue 11): ours ${verdict(ours)}. Naive, same test: ${verdict(naive)}.`);
  }
  for (const naive of runs.filter((r) => r.server === 'naive' && !find(results, 'ours', r.fast, r.slow, false, true))) {
    lines.push(row(naive));
  }
  return lines;
}

export function renderReport(results: BenchResults): string {
  const m = results.meta;
  const lines: string[] = [];
  lines.push(
    `Run: ${m.date}, Node ${m.node}, ${m.cpu} (${m.cores} cores)${m.quick ? ', **quick mode**' : ''}; ` +
      `corpus ${m.corpus.frames} frames ${m.corpus.width}x${m.corpus.height}, q=${m.corpus.quality}, ` +
      `${f(m.corpus.averageBytes / 1024, 0)} KiB a frame, replayed at 30 fps; ` +
      `${m.windowSeconds} s measurement window per configuration, soak ${m.soakSeconds} s` +
      (m.durationSeconds ? `; whole run ${f(m.durationSeconds / 60, 1)} min.` : '.'),
    '',
    '### Targets',
    '',
    '| target | ours | naive | ours/naive | ours |',
    '|---|---|---|---|---|',
  );
  for (const t of targets(results)) {
    // A run of some configurations only (BENCH_CONFIGS) has nothing to say about the others' targets.
    if (t.ours === undefined && t.naive === undefined) continue;
    const verdict = t.ours === undefined ? 'no data' : t.pass(t.ours) ? '**PASS**' : '**FAIL**';
    lines.push(
      `| ${t.name} (${t.where}) | ${f(t.ours, t.digits)} ${t.unit} | ${f(t.naive, t.digits)} ${t.unit}${t.naiveNote ?? ''} | ${ratio(t.ours, t.naive)} | ${verdict} |`,
    );
  }
  for (const oursBurst of results.runs.filter((r) => r.burst && r.server === 'ours')) {
    const naiveBurst = find(results, 'naive', oursBurst.fast, oursBurst.slow, false, true);
    const cell = (run: RunResult | undefined): string => {
      if (!run) return '–';
      const v = burstVerdict(run);
      return `${v.pass ? 'PASS' : 'FAIL'}: ${v.why.join('; ')}`;
    };
    lines.push(
      `| ${oursBurst.fast} + ${oursBurst.slow} viewers connecting at once to a fresh server (bcrypt cost 12): all answered 200, every fast viewer >= 29 fps, replay at 30 fps (burst) | ` +
        `${cell(oursBurst)} | ${cell(naiveBurst)} | – | **${burstVerdict(oursBurst).pass ? 'PASS' : 'FAIL'}** |`,
    );
  }
  lines.push(
    '',
    '### Per configuration',
    '',
    'fps: delivered frames per second per fast viewer (slowest / median). lost: frames fast viewers never got. ' +
      'latency: whole frame received minus stamp, all fast viewers\' frames (p50 / p99). CPU/frame: server CPU ' +
      'during the window divided by frames delivered to all viewers; in brackets the server\'s and the load ' +
      'generator\'s CPU use (100% = one core). RSS: server, window start → end (max). ' +
      'snapshot and first frame: p50 / p99, while the viewers stream. slow: a slow viewer\'s fps / the age of what it sees (p50, max).',
    '',
    TABLE_HEAD,
    TABLE_RULE,
  );
  const configs = [...new Set(results.runs.filter((r) => !r.soak).map((r) => `${r.fast}:${r.slow}:${r.burst ? 1 : 0}`))];
  for (const key of configs) {
    const [fast = NaN, slow = NaN, burst] = key.split(':').map(Number);
    const ours = find(results, 'ours', fast, slow, false, burst === 1);
    const naive = find(results, 'naive', fast, slow, false, burst === 1);
    if (ours) lines.push(`| ${mainRow(ours)} |`);
    if (naive) lines.push(`| ${mainRow(naive)} |`);
    if (ours && naive) lines.push(`| ${ratioRow(ours, naive)} |`);
  }
  const soaks = results.runs.filter((r) => r.soak);
  const [firstSoak] = soaks;
  if (firstSoak) {
    lines.push('', `### Soak: ${label(firstSoak)}, ${m.soakSeconds} s`, '', TABLE_HEAD, TABLE_RULE, ...soaks.map((run) => `| ${mainRow(run)} |`));
    const step = Math.max(1, Math.round(m.soakSeconds / 8));
    const marks: number[] = [];
    for (let t = 0; t <= m.soakSeconds; t += step) marks.push(t);
    lines.push('', 'Server RSS (MiB) over the soak window:', '', `| server | ${marks.map((t) => `${t} s`).join(' | ')} | growth |`, `|---|${marks.map(() => '---').join('|')}|---|`);
    for (const run of soaks) {
      const at = (t: number): string => {
        const sample = run.rss.filter((s) => s.t <= t + 0.5).pop();
        if (run.exceeded && t > run.exceeded.t) return 'killed';
        return sample ? f(sample.mib, 0) : '–';
      };
      const growth = run.exceeded ? `> ${f(run.exceeded.mib - (run.rssStart ?? 0), 0)} (exceeded)` : f(run.rssGrowth, 1);
      lines.push(`| ${run.server} | ${marks.map(at).join(' | ')} | ${growth} |`);
    }
  }
  lines.push(...burstSection(results));
  lines.push(
    '',
    '### Inside the servers, during the window',
    '',
    'The share of the server\'s CPU time spent in the kernel (system time: mostly copying frames into loopback sockets), ' +
      'event-loop delay (perf_hooks, 10 ms resolution: ~10 ms means no delay), the longest GC pause, ' +
      'how late the replay emitted frames (mean / worst) and frames it had to skip, heap and external ' +
      'memory at the end, and the CPU the rest of the machine used meanwhile (other processes and ' +
      'uncharged kernel work; 100% = one core).',
    '',
    '| viewers | server | CPU in kernel | loop delay p99 / max ms | GC count / longest ms | replay late mean / max ms, skipped | heap / external MiB | other CPU |',
    '|---|---|---|---|---|---|---|---|',
  );
  for (const run of results.runs) {
    const h = run.health;
    const r = run.replay;
    const mem = run.memory;
    lines.push(
      `| ${label(run)}${run.soak ? ' (soak)' : ''} | ${run.server} | ` +
        `${run.serverCpuMs && run.serverSysMs !== undefined ? `${f((run.serverSysMs / run.serverCpuMs) * 100, 0)}%` : '–'} | ` +
        `${h ? `${f(h.loopDelay.p99)} / ${f(h.loopDelay.max)}` : '–'} | ` +
        `${h ? `${h.gc.count} / ${f(h.gc.maxMs)}${h.gc.maxKind ? ` (${h.gc.maxKind})` : ''}` : '–'} | ` +
        `${r ? `${f(r.meanLateMs)} / ${f(r.maxLateMs)}, ${r.skipped}` : '–'} | ` +
        `${mem ? `${f(mem.heapUsed / 2 ** 20, 0)} / ${f(mem.external / 2 ** 20, 0)}` : '–'} | ` +
        `${run.otherCpuPercent === undefined ? '–' : `${f(run.otherCpuPercent, 0)}%`} |`,
    );
  }
  const notes: string[] = [];
  for (const run of results.runs) {
    const where = `${run.server}, ${label(run)}${run.soak ? ' (soak)' : ''}`;
    if (run.error) notes.push(`${where}: ${run.error}`);
    if (run.replay && run.replay.skipped > 0) notes.push(`${where}: the replay fell behind and skipped ${run.replay.skipped} frames (worst lateness ${f(run.replay.maxLateMs, 0)} ms).`);
    if (run.load?.errors.length) notes.push(`${where}: ${run.load.errors.slice(0, 3).join('; ')}`);
    const clientLoop = run.load?.clientLoopDelayMaxMs;
    if (clientLoop !== undefined && clientLoop > 100) {
      notes.push(`${where}: the load generator's own event loop stalled for up to ${f(clientLoop, 0)} ms in the window (its viewers read nothing meanwhile; the server sees them as slow).`);
    }
    if (run.load && (run.load.snapshotErrors || run.load.firstFrameErrors)) {
      notes.push(`${where}: ${run.load.snapshotErrors} snapshot errors, ${run.load.firstFrameErrors} first-frame errors.`);
    }
  }
  if (notes.length) lines.push('', 'Problems seen during the run:', '', ...notes.map((n) => `- ${n}`));
  return `${lines.join('\n')}\n`;
}
