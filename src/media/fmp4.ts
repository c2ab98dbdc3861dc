// Fragmented MP4 as ffmpeg writes it to a pipe (`-movflags frag_keyframe+empty_moov+default_base_moof`):
// an init segment (ftyp + moov), then fragments (an optional prft, a moof, an mdat), and an mfra
// when ffmpeg exits. This cuts a byte stream into top-level boxes, groups them into the init
// segment and fragments, and reads of each fragment what consumers need: whether its video
// starts on a key frame, its media start time and duration. Pure: no I/O.

/** One top-level box: its four-letter type and all its bytes (header included). */
export interface Box {
  type: string;
  data: Buffer;
}

/** Cuts a stream of bytes into complete top-level MP4 boxes. */
export class BoxSplitter {
  private pending: Buffer[] = [];
  private pendingLength = 0;

  /** Bytes in, complete boxes out (in order). Throws on a box header no MP4 can have. */
  push(chunk: Buffer): Box[] {
    this.pending.push(chunk);
    this.pendingLength += chunk.length;
    const boxes: Box[] = [];
    // A lone pending buffer is this chunk: nothing was left over from the last push.
    let buffer = this.pending.length === 1 ? chunk : Buffer.concat(this.pending, this.pendingLength);
    let offset = 0;
    for (;;) {
      if (buffer.length - offset < 8) break;
      let size = buffer.readUInt32BE(offset);
      const type = buffer.toString('latin1', offset + 4, offset + 8);
      if (size === 1) {
        if (buffer.length - offset < 16) break;
        size = Number(buffer.readBigUInt64BE(offset + 8));
      }
      if (size < 8 || !/^[\x20-\x7e]{4}$/.test(type)) throw new Error(`not an MP4 stream: box "${type}" of ${size} bytes`);
      if (buffer.length - offset < size) break;
      boxes.push({ type, data: buffer.subarray(offset, offset + size) });
      offset += size;
    }
    buffer = buffer.subarray(offset);
    this.pending = buffer.length > 0 ? [buffer] : [];
    this.pendingLength = buffer.length;
    return boxes;
  }
}

/** The children of a container box's payload (`data` without the container's own header). */
export function childBoxes(payload: Buffer): Box[] {
  const boxes: Box[] = [];
  let offset = 0;
  while (payload.length - offset >= 8) {
    let size = payload.readUInt32BE(offset);
    let header = 8;
    if (size === 1) {
      size = Number(payload.readBigUInt64BE(offset + 8));
      header = 16;
    } else if (size === 0) {
      size = payload.length - offset;
    }
    if (size < header || offset + size > payload.length) break;
    boxes.push({ type: payload.toString('latin1', offset + 4, offset + 8), data: payload.subarray(offset, offset + size) });
    offset += size;
  }
  return boxes;
}

/** A box's payload: its bytes after the 8-byte header (16 with a 64-bit size). */
export function payloadOf(box: Box): Buffer {
  return box.data.subarray(box.data.readUInt32BE(0) === 1 ? 16 : 8);
}

function find(boxes: Box[], type: string): Box | undefined {
  return boxes.find((box) => box.type === type);
}

/** What the init segment says of each track, for reading fragments. */
export interface TrackInfo {
  id: number;
  /** `vide`, `soun`, ... */
  handler: string;
  timescale: number;
  /** Defaults from mvex/trex, used when a fragment does not say. */
  defaultDuration: number;
  defaultFlags: number;
  /** Video only: the coded size from tkhd (16.16 fixed point, rounded). */
  width?: number;
  height?: number;
  /** Video only: the RFC 6381 codec string from avcC, e.g. `avc1.64001f`. */
  codec?: string;
}

/** Reads the tracks of a moov box. */
export function readTracks(moov: Box): TrackInfo[] {
  const children = childBoxes(payloadOf(moov));
  const trex = new Map<number, { duration: number; flags: number }>();
  const mvex = find(children, 'mvex');
  for (const box of mvex ? childBoxes(payloadOf(mvex)) : []) {
    if (box.type !== 'trex') continue;
    const p = payloadOf(box);
    trex.set(p.readUInt32BE(4), { duration: p.readUInt32BE(12), flags: p.readUInt32BE(20) });
  }
  const tracks: TrackInfo[] = [];
  for (const trak of children.filter((box) => box.type === 'trak')) {
    const parts = childBoxes(payloadOf(trak));
    const tkhd = find(parts, 'tkhd');
    const mdia = find(parts, 'mdia');
    if (!tkhd || !mdia) continue;
    const t = payloadOf(tkhd);
    const version = t[0];
    const id = t.readUInt32BE(version === 1 ? 20 : 12);
    const sizeAt = version === 1 ? 88 : 76;
    const media = childBoxes(payloadOf(mdia));
    const mdhd = find(media, 'mdhd');
    const hdlr = find(media, 'hdlr');
    const m = mdhd ? payloadOf(mdhd) : undefined;
    const timescale = m ? m.readUInt32BE(m[0] === 1 ? 20 : 12) : 1000;
    const handler = hdlr ? payloadOf(hdlr).toString('latin1', 8, 12) : '';
    const defaults = trex.get(id) ?? { duration: 0, flags: 0 };
    const track: TrackInfo = { id, handler, timescale, defaultDuration: defaults.duration, defaultFlags: defaults.flags };
    if (handler === 'vide' && t.length >= sizeAt + 8) {
      track.width = Math.round(t.readUInt32BE(sizeAt) / 65536);
      track.height = Math.round(t.readUInt32BE(sizeAt + 4) / 65536);
      track.codec = avcCodecString(mdia);
    }
    tracks.push(track);
  }
  return tracks;
}

/** `avc1.PPCCLL` from the avcC box under mdia/minf/stbl/stsd/avc1, when there is one. */
function avcCodecString(mdia: Box): string | undefined {
  const minf = find(childBoxes(payloadOf(mdia)), 'minf');
  const stbl = minf && find(childBoxes(payloadOf(minf)), 'stbl');
  const stsd = stbl && find(childBoxes(payloadOf(stbl)), 'stsd');
  if (!stsd) return undefined;
  // stsd: version/flags (4), entry count (4), then sample entries; avc1's own fields take 78 bytes.
  const entries = childBoxes(payloadOf(stsd).subarray(8));
  const avc1 = entries.find((box) => box.type === 'avc1' || box.type === 'avc3');
  if (!avc1) return undefined;
  const avcC = find(childBoxes(payloadOf(avc1).subarray(78)), 'avcC');
  if (!avcC) return undefined;
  const c = payloadOf(avcC);
  // Profile, compatibility, level: bytes 1..3 (a truncated box throws, as the other reads here do).
  const hex = (at: number) => c.readUInt8(at).toString(16).padStart(2, '0');
  return `${avc1.type}.${hex(1)}${hex(2)}${hex(3)}`;
}

/** What a fragment says of its video, read from its moof. */
export interface FragmentInfo {
  /** The video's first sample is a sync sample (a key frame): a decoder can start here. */
  key: boolean;
  /** Media time of the first video sample, in milliseconds. */
  startMs: number;
  /** Media duration of the video samples, in milliseconds. */
  durationMs: number;
  /** Video samples (frames) in the fragment. */
  samples: number;
}

const SAMPLE_IS_NON_SYNC = 0x10000;

/** Reads the video traf of a moof; undefined when it has none. */
export function readFragment(moof: Box, video: TrackInfo): FragmentInfo | undefined {
  for (const traf of childBoxes(payloadOf(moof)).filter((box) => box.type === 'traf')) {
    const parts = childBoxes(payloadOf(traf));
    const tfhd = find(parts, 'tfhd');
    if (!tfhd) continue;
    const h = payloadOf(tfhd);
    const tfhdFlags = h.readUInt32BE(0) & 0xffffff;
    if (h.readUInt32BE(4) !== video.id) continue;
    let at = 8;
    if (tfhdFlags & 0x1) at += 8; // base data offset
    if (tfhdFlags & 0x2) at += 4; // sample description index
    let defaultDuration = video.defaultDuration;
    if (tfhdFlags & 0x8) {
      defaultDuration = h.readUInt32BE(at);
      at += 4;
    }
    if (tfhdFlags & 0x10) at += 4; // default sample size
    const defaultFlags = tfhdFlags & 0x20 ? h.readUInt32BE(at) : video.defaultFlags;

    const tfdt = find(parts, 'tfdt');
    let base = 0;
    if (tfdt) {
      const d = payloadOf(tfdt);
      base = d[0] === 1 ? Number(d.readBigUInt64BE(4)) : d.readUInt32BE(4);
    }
    let samples = 0;
    let duration = 0;
    let firstFlags: number | undefined;
    for (const trun of parts.filter((box) => box.type === 'trun')) {
      const r = payloadOf(trun);
      const flags = r.readUInt32BE(0) & 0xffffff;
      const count = r.readUInt32BE(4);
      let pos = 8;
      if (flags & 0x1) pos += 4; // data offset
      let runFirstFlags: number | undefined;
      if (flags & 0x4) {
        runFirstFlags = r.readUInt32BE(pos);
        pos += 4;
      }
      for (let i = 0; i < count; i++) {
        let sampleDuration = defaultDuration;
        let sampleFlags = i === 0 && runFirstFlags !== undefined ? runFirstFlags : defaultFlags;
        if (flags & 0x100) {
          sampleDuration = r.readUInt32BE(pos);
          pos += 4;
        }
        if (flags & 0x200) pos += 4; // size
        if (flags & 0x400) {
          const perSample = r.readUInt32BE(pos);
          if (!(i === 0 && runFirstFlags !== undefined)) sampleFlags = perSample;
          pos += 4;
        }
        if (flags & 0x800) pos += 4; // composition time offset
        if (samples === 0 && i === 0) firstFlags = sampleFlags;
        duration += sampleDuration;
      }
      samples += count;
    }
    const scale = video.timescale || 1000;
    return {
      key: samples > 0 && firstFlags !== undefined && (firstFlags & SAMPLE_IS_NON_SYNC) === 0,
      startMs: (base / scale) * 1000,
      durationMs: (duration / scale) * 1000,
      samples,
    };
  }
  return undefined;
}

/** A fragment as consumers get it: its bytes (prft + moof + mdat) and what its video says. */
export interface Fmp4Fragment extends FragmentInfo {
  data: Buffer;
  /** Where its moof starts in `data` (after the prft): `data.subarray(moofOffset)` is moof + mdat alone. */
  moofOffset: number;
  /** Wall-clock time it was complete (ms since the epoch). */
  receivedAt: number;
}

export interface Fmp4Init {
  /** ftyp + moov. */
  data: Buffer;
  video: TrackInfo;
  tracks: TrackInfo[];
}

/**
 * Groups boxes into the init segment and fragments. Anything after the last fragment that is
 * not one (ffmpeg's closing mfra) is dropped.
 */
export class Fmp4Assembler {
  private head: Box[] = [];
  private held: Box[] = [];
  private _init?: Fmp4Init;

  constructor(
    private readonly onInit: (init: Fmp4Init) => void,
    private readonly onFragment: (fragment: Fmp4Fragment) => void,
  ) {}

  get init(): Fmp4Init | undefined {
    return this._init;
  }

  push(box: Box, now = Date.now()): void {
    if (!this._init) {
      if (box.type === 'ftyp' || box.type === 'moov') this.head.push(box);
      if (box.type !== 'moov') return;
      const tracks = readTracks(box);
      const video = tracks.find((track) => track.handler === 'vide');
      if (!video) throw new Error('the MP4 stream has no video track');
      this._init = { data: Buffer.concat(this.head.map((b) => b.data)), video, tracks };
      this.head = [];
      this.onInit(this._init);
      return;
    }
    switch (box.type) {
      case 'styp':
      case 'prft':
      case 'sidx':
      case 'moof':
        this.held.push(box);
        return;
      case 'mdat': {
        const moof = this.held.find((b) => b.type === 'moof');
        if (!moof) {
          this.held = [];
          return;
        }
        const info = readFragment(moof, this._init.video) ?? { key: false, startMs: 0, durationMs: 0, samples: 0 };
        const before = this.held.slice(0, this.held.indexOf(moof));
        const data = Buffer.concat([...this.held.map((b) => b.data), box.data]);
        this.held = [];
        this.onFragment({ ...info, data, moofOffset: before.reduce((sum, b) => sum + b.data.length, 0), receivedAt: now });
        return;
      }
      default:
        // mfra (written when ffmpeg exits), free, ...: not part of any fragment.
        this.held = [];
    }
  }
}
