// The HomeKit benchmark's results (as saved in bench/results/homekit-*.json) and their markdown
// for bench/README.md: the acceptance targets with PASS/FAIL and ratios (ours / homebridge-camera-
// ffmpeg), then snapshot latency, stream start and CPU/RSS per side, side by side.
import type { StreamRequest, StreamStart } from './homekit-hap';
import type { Percentiles } from './protocol';
import { percentiles } from './protocol';

export type SideName = 'ours' | 'camera-ffmpeg';

export interface SnapshotSeries {
  /** idle | stream | cold */
  when: string;
  /** fresh: far enough apart that no cache of either plugin answers; cached: back to back. */
  mode: 'fresh' | 'cached';
  gapMs: number;
  /** Request to whole answer, ms, one per snapshot that succeeded. */
  ms: number[];
  bytes: number;
  errors: string[];
  /** CPU the rest of the machine used meanwhile (100% = one core). */
  otherCpuPercent?: number;
  /** Samples taken although the machine did not calm down first. */
  busySamples?: number;
}

export interface StartSeries {
  /** warm | cold */
  when: string;
  starts: StreamStart[];
  errors: string[];
  otherCpuPercent?: number;
  /** Starts made although the machine did not calm down first. */
  busySamples?: number;
}

export interface CpuWindow {
  /** idle | stream */
  when: string;
  seconds: number;
  /** The Homebridge process tree's CPU (every ffmpeg it runs included), 100% = one core. */
  cpuPercent: number;
  rssMeanMiB: number;
  rssMaxMiB: number;
  /** ffmpeg processes in the tree during the window. */
  ffmpegs: number;
  /** What arrived at the Home app's port during the window, kbit/s (stream windows). */
  streamKbps?: number;
  otherCpuPercent?: number;
  /** CPU and RSS per kind of process (Homebridge itself, each kind of ffmpeg). */
  roles?: Record<string, { cpuPercent: number; rssMeanMiB: number }>;
}

export interface SideResult {
  side: SideName;
  /** Plugin package name and version. */
  plugin: string;
  /** The platform block it ran with. */
  config: unknown;
  snapshots: SnapshotSeries[];
  /** The first start, passed on to an ffmpeg receiver too (proof the stream decodes). */
  check?: StreamStart;
  starts: StartSeries[];
  cpu: CpuWindow[];
  errors: string[];
}

export interface HomeKitBenchResults {
  meta: {
    date: string;
    node: string;
    cpu: string;
    cores: number;
    homebridge: string;
    ffmpeg: string;
    commit: string;
    quick: boolean;
    /** The camera both plugins read. */
    source?: string;
    durationSeconds?: number;
  };
  snapshotSize: { width: number; height: number };
  stream: StreamRequest;
  sides: SideResult[];
}

const f = (n: number | undefined, digits = 0): string => (n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(digits));
const NAMES: Record<SideName, string> = { ours: 'ours', 'camera-ffmpeg': 'camera-ffmpeg' };

function ratio(ours: number | undefined, theirs: number | undefined): string {
  if (ours === undefined || theirs === undefined || !Number.isFinite(ours) || !Number.isFinite(theirs) || theirs <= 0) return '–';
  return `${(ours / theirs).toFixed(2)}×`;
}

const stats = (values: Array<number | undefined>): Percentiles => percentiles(values.filter((v): v is number => v !== undefined && Number.isFinite(v)));

function snapshotStats(side: SideResult | undefined, when: string, mode: 'fresh' | 'cached'): { p: Percentiles; series?: SnapshotSeries } {
  const series = side?.snapshots.find((s) => s.when === when && s.mode === mode);
  return { p: stats(series?.ms ?? []), series };
}

function startStats(side: SideResult | undefined, when: string, pick: (s: StreamStart) => number | undefined): Percentiles {
  const series = side?.starts.find((s) => s.when === when);
  return stats((series?.starts ?? []).map(pick));
}

const passFail = (ok: boolean | undefined): string => (ok === undefined ? '–' : ok ? '**PASS**' : '**FAIL**');

export function renderReport(results: HomeKitBenchResults): string {
  const { meta } = results;
  const ours = results.sides.find((s) => s.side === 'ours');
  const theirs = results.sides.find((s) => s.side === 'camera-ffmpeg');
  const out: string[] = [];
  const { width, height, fps, bitrate } = results.stream;
  out.push(
    `Run: ${meta.date}, Node ${meta.node}, ${meta.cpu} (${meta.cores} cores), Homebridge ${meta.homebridge}, ${meta.ffmpeg}; ` +
      `${ours?.plugin ?? 'ours not run'} (commit ${meta.commit}) against ${theirs?.plugin ?? 'homebridge-camera-ffmpeg not run'}; ` +
      `camera: ${meta.source ?? `ffmpeg's testsrc`}; snapshots ${results.snapshotSize.width}x${results.snapshotSize.height}, streams ${width}x${height} at ${fps} fps, ${bitrate} kbit/s` +
      `${meta.quick ? ' (BENCH_QUICK: small samples)' : ''}${meta.durationSeconds ? `; whole run ${(meta.durationSeconds / 60).toFixed(1)} min` : ''}.`,
    '',
  );

  // ---- targets
  const snapOurs = snapshotStats(ours, 'stream', 'fresh').p;
  const snapTheirs = snapshotStats(theirs, 'stream', 'fresh').p;
  const pktOurs = startStats(ours, 'warm', (s) => s.firstPacketMs);
  const pktTheirs = startStats(theirs, 'warm', (s) => s.firstPacketMs);
  const pktCold = startStats(ours, 'cold', (s) => s.firstPacketMs);
  out.push('#### Targets', '', '| target | ours | camera-ffmpeg | ours/theirs | target met | ratio in our favour |', '|---|---|---|---|---|---|');
  const target = (name: string, a: number, b: number, limit: number): void => {
    const met = Number.isFinite(a) ? a <= limit : undefined;
    const favour = Number.isFinite(a) && Number.isFinite(b) ? a < b : undefined;
    out.push(`| ${name} | ${f(a)} ms | ${f(b)} ms | ${ratio(a, b)} | ${passFail(met)} | ${passFail(favour)} |`);
  };
  target(`Snapshot p50 through HAP while a stream runs <= 150 ms (fresh, n=${snapOurs.count}/${snapTheirs.count})`, snapOurs.p50, snapTheirs.p50, 150);
  target(`First SRTP packet p50 <= 1 s after START (n=${pktOurs.count}/${pktTheirs.count})`, pktOurs.p50, pktTheirs.p50, 1000);
  if (pktCold.count) target(`… ours with its capture stopped (motion off, idle camera; n=${pktCold.count})`, pktCold.p50, pktTheirs.p50, 1000);
  out.push('');

  // ---- snapshots
  out.push(
    '#### Snapshots through HAP',
    '',
    `\`getImage(${results.snapshotSize.width}, ${results.snapshotSize.height})\` on a paired, kept-alive HAP session: request written to the whole image read, ms (nearest-rank percentiles: below 100 samples p99 is the slowest one). ` +
      '*fresh*: one request every few seconds, so neither plugin can answer from a cache (ours keeps a scaled snapshot 1 s, camera-ffmpeg its source frame 3 s); ' +
      '*cached*: back to back. *idle*: no stream; *stream*: while a live stream runs; *cold* (ours only): a camera with motion off whose capture had stopped.',
    '',
    '| when | mode | ours p50 / p90 / p99 | camera-ffmpeg p50 / p90 / p99 | ours/theirs (p50) | n | errors | other CPU |',
    '|---|---|---|---|---|---|---|---|',
  );
  for (const [when, mode] of [
    ['idle', 'fresh'],
    ['idle', 'cached'],
    ['stream', 'fresh'],
    ['stream', 'cached'],
    ['cold', 'fresh'],
  ] as const) {
    const a = snapshotStats(ours, when, mode);
    const b = snapshotStats(theirs, when, mode);
    if (!a.series && !b.series) continue;
    const triple = (p: Percentiles): string => (p.count ? `${f(p.p50)} / ${f(p.p90)} / ${f(p.p99)}` : '–');
    const errors = `${a.series?.errors.length ?? '–'} / ${b.series?.errors.length ?? '–'}`;
    const other = `${f(a.series?.otherCpuPercent)}% / ${f(b.series?.otherCpuPercent)}%`;
    out.push(`| ${when} | ${mode} | ${triple(a.p)} | ${triple(b.p)} | ${ratio(a.p.p50, b.p.p50)} | ${a.p.count} / ${b.p.count} | ${errors} | ${other} |`);
  }
  out.push('');

  // ---- stream starts
  out.push(
    '#### Stream start',
    '',
    'ms after the SelectedRTPStreamConfiguration START write was sent: the accessory answering the write, the first SRTP packet (authenticated with the session key), ' +
      'and the first decodable frame (the last packet of the first access unit holding an IDR slice, SPS and PPS seen before it). ' +
      'Ours: *capture running* (motion detection keeps it up, the default), *capture stopped* (a camera with motion off, idle for longer than the 10 s grace). camera-ffmpeg starts a new ffmpeg on the source for every stream.',
    '',
    '| side | start | n | START answered p50 | first packet p50 / max | first decodable frame p50 / max | errors |',
    '|---|---|---|---|---|---|---|',
  );
  for (const side of [ours, theirs]) {
    for (const series of side?.starts ?? []) {
      const answered = stats(series.starts.map((s) => s.startAnsweredMs));
      const pkt = stats(series.starts.map((s) => s.firstPacketMs));
      const frame = stats(series.starts.map((s) => s.firstFrameMs));
      const when = side!.side === 'ours' ? (series.when === 'warm' ? 'capture running' : 'capture stopped') : 'new ffmpeg on the source';
      out.push(`| ${NAMES[side!.side]} | ${when} | ${series.starts.length} | ${f(answered.p50)} | ${f(pkt.p50)} / ${f(pkt.max)} | ${f(frame.p50)} / ${f(frame.max)} | ${series.errors.length} |`);
    }
  }
  const frameOurs = startStats(ours, 'warm', (s) => s.firstFrameMs);
  const frameTheirs = startStats(theirs, 'warm', (s) => s.firstFrameMs);
  out.push(`| *ours (capture running) / theirs* | | | | ${ratio(pktOurs.p50, pktTheirs.p50)} | ${ratio(frameOurs.p50, frameTheirs.p50)} | |`, '');
  const checks = [ours, theirs].filter((s) => s?.check).map((s) => {
    const c = s!.check!;
    return `${NAMES[s!.side]}: ${c.receiverSize ?? '?'} decoded, first picture out of the receiver ${f(c.receiverFrameMs)} ms after START (first decodable frame at ${f(c.firstFrameMs)} ms)`;
  });
  if (checks.length) out.push(`Check stream (an ffmpeg receiver decoding what arrived, not counted above): ${checks.join('; ')}.`, '');
  const keys = [ours, theirs].flatMap((side) =>
    (side?.starts ?? [])
      .filter((series) => series.starts.some((x) => x.ownKey !== undefined))
      .map((series) => {
        const label = side!.side === 'ours' ? `${NAMES.ours} ${series.when === 'warm' ? 'capture running' : 'capture stopped'}` : NAMES[side!.side];
        return `${label} ${series.starts.filter((x) => x.ownKey).length}/${series.starts.length}`;
      }),
  );
  if (keys.length) out.push(`SetupEndpoints answered with a video key of the accessory's own (ours: its warm encoder was ready; the receiver decrypts with whichever key was answered): ${keys.join(', ')}.`, '');

  // ---- CPU and memory
  out.push(
    '#### CPU and memory of each Homebridge process tree',
    '',
    'Homebridge and every process it runs (the plugin\'s ffmpegs), from /proc: CPU over the window (100% = one core; children that ended inside it included), RSS summed over the tree (shared pages count once per process) sampled every second.',
    '',
    '| when | side | window | CPU | RSS mean / max MiB | ffmpeg processes | stream kbit/s | other CPU |',
    '|---|---|---|---|---|---|---|---|',
  );
  for (const when of ['idle', 'stream']) {
    const rows = [ours, theirs].map((s) => s?.cpu.find((c) => c.when === when));
    rows.forEach((c, i) => {
      if (!c) return;
      out.push(`| ${when} | ${i === 0 ? 'ours' : 'camera-ffmpeg'} | ${c.seconds} s | ${f(c.cpuPercent)}% | ${f(c.rssMeanMiB)} / ${f(c.rssMaxMiB)} | ${c.ffmpegs} | ${f(c.streamKbps)} | ${f(c.otherCpuPercent)}% |`);
    });
    // A ratio to a tree that used (almost) nothing means nothing.
    const cpuRatio = rows[1] && rows[1].cpuPercent >= 2 ? ratio(rows[0]?.cpuPercent, rows[1].cpuPercent) : '–';
    if (rows[0] && rows[1]) out.push(`| ${when} | *ours/theirs* | | ${cpuRatio} | ${ratio(rows[0].rssMeanMiB, rows[1].rssMeanMiB)} | | | |`);
  }
  out.push('', 'Per process, in the same windows (CPU / RSS mean):', '', '| when | side | process | CPU | RSS MiB |', '|---|---|---|---|---|');
  for (const when of ['idle', 'stream']) {
    for (const side of [ours, theirs]) {
      const window = side?.cpu.find((c) => c.when === when);
      for (const [role, r] of Object.entries(window?.roles ?? {}).sort((a, b) => a[0].localeCompare(b[0]))) {
        out.push(`| ${when} | ${NAMES[side!.side]} | ${role} | ${f(r.cpuPercent)}% | ${f(r.rssMeanMiB)} |`);
      }
    }
  }
  out.push('');

  // Another engineer's tests share this machine: say which figures they may have disturbed.
  const busy: string[] = [];
  for (const side of results.sides) {
    for (const x of side.snapshots) if ((x.otherCpuPercent ?? 0) > 25) busy.push(`${NAMES[side.side]} ${x.when} ${x.mode} snapshots (${f(x.otherCpuPercent)}%)`);
    for (const x of side.starts) if ((x.otherCpuPercent ?? 0) > 25) busy.push(`${NAMES[side.side]} ${x.when} starts (${f(x.otherCpuPercent)}%)`);
    for (const x of side.cpu) if ((x.otherCpuPercent ?? 0) > 25) busy.push(`${NAMES[side.side]} ${x.when} CPU window (${f(x.otherCpuPercent)}%)`);
  }
  for (const side of results.sides) {
    for (const x of [...side.snapshots, ...side.starts]) {
      if (x.busySamples) busy.push(`${NAMES[side.side]} ${x.when}${'mode' in x ? ` ${x.mode} snapshots` : ' starts'}: ${x.busySamples} sample(s) taken without a quiet second first`);
    }
  }
  out.push(busy.length ? `The rest of the machine was busy (more than 25% of a core) during: ${busy.join(', ')}.` : 'The rest of the machine stayed under 25% of a core during every series.', '');

  const errors = results.sides.flatMap((s) => [...s.errors, ...s.snapshots.flatMap((x) => x.errors), ...s.starts.flatMap((x) => x.errors)].map((e) => `${NAMES[s.side]}: ${e}`));
  if (errors.length) out.push('Errors:', '', ...errors.slice(0, 12).map((e) => `- ${e.split('\n')[0]}`), '');
  return `${out.join('\n')}\n`;
}
