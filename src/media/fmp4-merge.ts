// Joins consecutive fragments of one fragmented MP4 stream (each a moof + mdat, as the H.264 stage
// cuts them every 250 ms for live viewers) into a single fragment: one moof holding, per track,
// one traf with one trun that lists every sample (duration, size, flags, composition offset),
// and one mdat with the samples in that order. HomeKit Secure Video wants each recording packet
// to be exactly one moof + mdat starting with a key frame, a GOP long. Sample bytes and timing are
// kept as they were; a gap between two fragments' decode times is given to the sample before it.
// Pure: no I/O.
import { childBoxes, payloadOf } from './fmp4';

/** A track's defaults from the init segment's trex, used where a fragment does not say. */
export interface TrackDefaults {
  duration: number;
  size: number;
  flags: number;
}

interface Sample {
  duration: number;
  size: number;
  flags: number;
  /** Composition time offset (signed when the trun was version 1). */
  cto: number;
  data: Buffer;
}

interface TrackRun {
  id: number;
  /** Decode time of the first sample, in the track's timescale. */
  baseTime: bigint;
  /** Decode time just after the last sample. */
  endTime: bigint;
  samples: Sample[];
  signed: boolean;
  descriptionIndex?: number;
}

/** The trex defaults of every track of an init segment (ftyp + moov). */
export function trackDefaults(init: Buffer): Map<number, TrackDefaults> {
  const defaults = new Map<number, TrackDefaults>();
  const moov = topLevel(init).find((box) => box.type === 'moov');
  const mvex = moov && childBoxes(payloadOf(moov)).find((box) => box.type === 'mvex');
  for (const trex of mvex ? childBoxes(payloadOf(mvex)).filter((box) => box.type === 'trex') : []) {
    const p = payloadOf(trex);
    defaults.set(p.readUInt32BE(4), { duration: p.readUInt32BE(12), size: p.readUInt32BE(16), flags: p.readUInt32BE(20) });
  }
  return defaults;
}

/** The top-level boxes of a buffer, with where each starts. */
function topLevel(data: Buffer): Array<{ type: string; data: Buffer; offset: number }> {
  const boxes: Array<{ type: string; data: Buffer; offset: number }> = [];
  let offset = 0;
  while (data.length - offset >= 8) {
    let size = data.readUInt32BE(offset);
    if (size === 1) size = Number(data.readBigUInt64BE(offset + 8));
    else if (size === 0) size = data.length - offset;
    if (size < 8 || offset + size > data.length) throw new Error(`fragment: box at ${offset} runs past the end`);
    boxes.push({ type: data.toString('latin1', offset + 4, offset + 8), data: data.subarray(offset, offset + size), offset });
    offset += size;
  }
  return boxes;
}

/** Reads one fragment's samples (with their bytes) into the runs per track. */
function readInto(fragment: Buffer, defaults: Map<number, TrackDefaults>, runs: Map<number, TrackRun>, first: { sequence?: number }): void {
  const boxes = topLevel(fragment);
  const moof = boxes.find((box) => box.type === 'moof');
  if (!moof || !boxes.some((box) => box.type === 'mdat' && box.offset > moof.offset)) throw new Error('fragment: no moof followed by an mdat');
  const moofStart = moof.offset;
  let trafIndex = 0;
  for (const child of childBoxes(payloadOf(moof))) {
    if (child.type === 'mfhd') {
      first.sequence ??= payloadOf(child).readUInt32BE(4);
      continue;
    }
    if (child.type !== 'traf') continue;
    const parts = childBoxes(payloadOf(child));
    const tfhd = parts.find((box) => box.type === 'tfhd');
    if (!tfhd) throw new Error('fragment: traf without tfhd');
    const h = payloadOf(tfhd);
    const tfhdFlags = h.readUInt32BE(0) & 0xffffff;
    const id = h.readUInt32BE(4);
    const trex = defaults.get(id) ?? { duration: 0, size: 0, flags: 0 };
    let at = 8;
    if (tfhdFlags & 0x1) throw new Error('fragment: base data offsets are not supported (write with default-base-is-moof)');
    let descriptionIndex: number | undefined;
    if (tfhdFlags & 0x2) {
      descriptionIndex = h.readUInt32BE(at);
      at += 4;
    }
    let defaultDuration = trex.duration;
    if (tfhdFlags & 0x8) {
      defaultDuration = h.readUInt32BE(at);
      at += 4;
    }
    let defaultSize = trex.size;
    if (tfhdFlags & 0x10) {
      defaultSize = h.readUInt32BE(at);
      at += 4;
    }
    const defaultFlags = tfhdFlags & 0x20 ? h.readUInt32BE(at) : trex.flags;
    if (!(tfhdFlags & 0x20000) && trafIndex > 0) throw new Error('fragment: a second traf without default-base-is-moof is not supported');
    trafIndex++;

    const tfdt = parts.find((box) => box.type === 'tfdt');
    let decodeTime: bigint | undefined;
    if (tfdt) {
      const d = payloadOf(tfdt);
      decodeTime = d[0] === 1 ? d.readBigUInt64BE(4) : BigInt(d.readUInt32BE(4));
    }
    let run = runs.get(id);
    if (!run) {
      run = { id, baseTime: decodeTime ?? 0n, endTime: decodeTime ?? 0n, samples: [], signed: false, descriptionIndex };
      runs.set(id, run);
    } else if (decodeTime !== undefined && decodeTime !== run.endTime) {
      // Not contiguous: the sample before the gap lasts until this fragment starts.
      const last = run.samples.at(-1);
      const gap = Number(decodeTime - run.endTime);
      if (last && last.duration + gap > 0) {
        last.duration += gap;
        run.endTime = decodeTime;
      }
    }
    if (descriptionIndex !== run.descriptionIndex) throw new Error('fragment: sample description changes between fragments');

    let cursor = moofStart;
    for (const trun of parts.filter((box) => box.type === 'trun')) {
      const r = payloadOf(trun);
      const version = r[0];
      const flags = r.readUInt32BE(0) & 0xffffff;
      const count = r.readUInt32BE(4);
      let pos = 8;
      if (flags & 0x1) {
        cursor = moofStart + r.readInt32BE(pos);
        pos += 4;
      }
      let firstFlags: number | undefined;
      if (flags & 0x4) {
        firstFlags = r.readUInt32BE(pos);
        pos += 4;
      }
      if (version === 1) run.signed = true;
      for (let i = 0; i < count; i++) {
        let duration = defaultDuration;
        let size = defaultSize;
        let sampleFlags = i === 0 && firstFlags !== undefined ? firstFlags : defaultFlags;
        let cto = 0;
        if (flags & 0x100) {
          duration = r.readUInt32BE(pos);
          pos += 4;
        }
        if (flags & 0x200) {
          size = r.readUInt32BE(pos);
          pos += 4;
        }
        if (flags & 0x400) {
          const perSample = r.readUInt32BE(pos);
          if (!(i === 0 && firstFlags !== undefined)) sampleFlags = perSample;
          pos += 4;
        }
        if (flags & 0x800) {
          cto = version === 1 ? r.readInt32BE(pos) : r.readUInt32BE(pos);
          pos += 4;
        }
        if (cursor + size > fragment.length) throw new Error('fragment: a sample runs past the mdat');
        run.samples.push({ duration, size, flags: sampleFlags, cto, data: fragment.subarray(cursor, cursor + size) });
        run.endTime += BigInt(duration);
        cursor += size;
      }
    }
  }
}

function box(type: string, ...parts: Buffer[]): Buffer {
  const header = Buffer.alloc(8);
  const size = 8 + parts.reduce((sum, part) => sum + part.length, 0);
  header.writeUInt32BE(size);
  header.write(type, 4, 'latin1');
  return Buffer.concat([header, ...parts], size);
}

function fullBoxHeader(version: number, flags: number): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(((version & 0xff) << 24) | (flags & 0xffffff));
  return header;
}

/** One traf for a run, its trun's data offset set to `dataOffset` (from the start of the moof). */
function traf(run: TrackRun, dataOffset: number): Buffer {
  const tfhd = Buffer.alloc(run.descriptionIndex === undefined ? 4 : 8);
  tfhd.writeUInt32BE(run.id);
  if (run.descriptionIndex !== undefined) tfhd.writeUInt32BE(run.descriptionIndex, 4);
  const tfdt = Buffer.alloc(8);
  tfdt.writeBigUInt64BE(run.baseTime);
  const withCto = run.samples.some((sample) => sample.cto !== 0);
  const perSample = withCto ? 16 : 12;
  const trun = Buffer.alloc(8 + run.samples.length * perSample);
  trun.writeUInt32BE(run.samples.length, 0);
  trun.writeInt32BE(dataOffset, 4);
  run.samples.forEach((sample, i) => {
    const at = 8 + i * perSample;
    trun.writeUInt32BE(sample.duration, at);
    trun.writeUInt32BE(sample.size, at + 4);
    trun.writeUInt32BE(sample.flags >>> 0, at + 8);
    if (withCto) {
      if (run.signed) trun.writeInt32BE(sample.cto, at + 12);
      else trun.writeUInt32BE(sample.cto >>> 0, at + 12);
    }
  });
  const trunFlags = 0x1 | 0x100 | 0x200 | 0x400 | (withCto ? 0x800 : 0);
  return box(
    'traf',
    box('tfhd', fullBoxHeader(0, 0x20000 | (run.descriptionIndex === undefined ? 0 : 0x2)), tfhd),
    box('tfdt', fullBoxHeader(1, 0), tfdt),
    box('trun', fullBoxHeader(run.signed ? 1 : 0, trunFlags), trun),
  );
}

/**
 * One moof + mdat holding every sample of `fragments` (consecutive fragments of one stream, each
 * with one moof and its mdat; anything before the moof, such as a prft, is left out). `defaults`:
 * the init segment's trex values (`trackDefaults`). A single fragment comes back as its moof +
 * mdat. Throws on a fragment it cannot read.
 */
export function mergeFragments(fragments: Buffer[], defaults: Map<number, TrackDefaults>): Buffer {
  const only = fragments.length === 1 ? fragments.at(0) : undefined;
  if (only) {
    const boxes = topLevel(only);
    const moof = boxes.find((b) => b.type === 'moof');
    const mdat = boxes.find((b) => b.type === 'mdat');
    if (moof && mdat && boxes.length === 2 && moof.offset === 0) return only;
  }
  const runs = new Map<number, TrackRun>();
  const first: { sequence?: number } = {};
  for (const fragment of fragments) readInto(fragment, defaults, runs, first);
  const mfhd = Buffer.alloc(4);
  mfhd.writeUInt32BE(first.sequence ?? 1);
  const mfhdBox = box('mfhd', fullBoxHeader(0, 0), mfhd);
  const tracks = [...runs.values()];
  // The moof's size does not depend on the offsets: lay it out once with zeros, then for real.
  const moofSize = box('moof', mfhdBox, ...tracks.map((run) => traf(run, 0))).length;
  let offset = moofSize + 8;
  const trafs = tracks.map((run) => {
    const built = traf(run, offset);
    offset += run.samples.reduce((sum, sample) => sum + sample.size, 0);
    return built;
  });
  return Buffer.concat([box('moof', mfhdBox, ...trafs), box('mdat', ...tracks.flatMap((run) => run.samples.map((sample) => sample.data)))]);
}
