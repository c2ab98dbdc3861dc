// FrameHub with a scripted frame source: latest-frame-wins delivery, capture on demand with an
// idle grace period, restart with backoff after an exit or a stall, online/offline events.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';

import { silentLog } from '../src/log';
import type { CaptureExit, FrameSource } from '../src/media/capture';
import type { Frame } from '../src/media/frame-hub';
import { FrameHub } from '../src/media/frame-hub';
import { backoffDelay } from '../src/util/backoff';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A source the test drives by hand. */
class ScriptedSource extends EventEmitter implements FrameSource {
  started = false;
  stopped = false;
  start(): void {
    this.started = true;
  }
  stop(): Promise<void> {
    this.stopped = true;
    this.exit({ requested: true });
    return Promise.resolve();
  }
  frame(text: string): void {
    this.emit('frame', Buffer.from(text));
  }
  exit(details: Partial<CaptureExit> = {}): void {
    if (this.listenerCount('exit') === 0) return;
    this.emit('exit', { code: 1, signal: null, stderr: 'device vanished', requested: false, ...details });
    this.removeAllListeners('exit');
  }
}

function makeHub(options: Partial<ConstructorParameters<typeof FrameHub>[0]> = {}) {
  const sources: ScriptedSource[] = [];
  const hub = new FrameHub({
    name: 'test',
    log: silentLog,
    createSource: () => {
      const source = new ScriptedSource();
      sources.push(source);
      return source;
    },
    idleGraceMs: 50,
    backoffInitialMs: 20,
    backoffMaxMs: 200,
    ...options,
  });
  /** The capture started last. */
  const current = (): ScriptedSource => {
    const source = sources.at(-1);
    assert.ok(source, 'a capture was started');
    return source;
  };
  return { hub, sources, current };
}

const text = (frame: Frame) => frame.data.toString();

describe('FrameHub', () => {
  it('starts nothing until something consumes it', () => {
    const { hub, sources } = makeHub();
    assert.equal(sources.length, 0);
    assert.equal(hub.state, 'idle');
    assert.equal(hub.online, true);
  });

  it('starts one capture for many consumers and shares every frame', async () => {
    const { hub, sources, current } = makeHub();
    const a: string[] = [];
    const b: string[] = [];
    hub.subscribe((frame, done) => {
      a.push(text(frame));
      done();
    });
    hub.subscribe((frame, done) => {
      b.push(text(frame));
      done();
    });
    const release = hub.hold();
    assert.equal(sources.length, 1);
    assert.ok(current().started);
    current().frame('1');
    current().frame('2');
    assert.deepEqual(a, ['1', '2']);
    assert.deepEqual(b, ['1', '2']);
    assert.equal(hub.state, 'streaming');
    assert.equal(hub.latest?.seq, 2);
    release();
    await hub.close();
  });

  it('hands a busy consumer only the newest frame when it is ready (latest-frame-wins)', async () => {
    const { hub, current } = makeHub();
    const got: string[] = [];
    let finish: () => void = () => {};
    hub.subscribe((frame, done) => {
      got.push(text(frame));
      finish = done;
    });
    for (const n of ['1', '2', '3', '4']) current().frame(n);
    assert.deepEqual(got, ['1'], 'nothing more while busy');
    finish();
    assert.deepEqual(got, ['1', '4'], 'then the latest, skipping 2 and 3');
    finish();
    finish(); // a second call for the same frame changes nothing
    current().frame('5');
    assert.deepEqual(got, ['1', '4', '5']);
    await hub.close();
  });

  it('gives a new consumer the latest frame at once', async () => {
    const { hub, current } = makeHub();
    hub.subscribe((_f, done) => done());
    current().frame('first');
    current().frame('second');
    const got: string[] = [];
    hub.subscribe((frame, done) => {
      got.push(text(frame));
      done();
    });
    assert.deepEqual(got, ['second']);
    await hub.close();
  });

  it('stops the capture after the idle grace period, and not before', async () => {
    const { hub, sources, current } = makeHub({ idleGraceMs: 80 });
    const sub = hub.subscribe((_f, done) => done());
    current().frame('x');
    sub.unsubscribe();
    await sleep(30);
    assert.equal(current().stopped, false, 'still running inside the grace period');
    const again = hub.subscribe((_f, done) => done());
    await sleep(120);
    assert.equal(current().stopped, false, 'a consumer came back: keeps running');
    again.unsubscribe();
    await sleep(150);
    assert.equal(current().stopped, true);
    assert.equal(hub.state, 'idle');
    assert.equal(sources.length, 1);
    await hub.close();
  });

  it('starts a new capture for a consumer that arrives while an idle stop is under way', async () => {
    const sources: ScriptedSource[] = [];
    let finishStop: () => void = () => {};
    const hub = new FrameHub({
      name: 'test',
      log: silentLog,
      idleGraceMs: 10,
      createSource: () => {
        const source = new ScriptedSource();
        // The first source takes its time to stop, like ffmpeg finishing its last frame.
        if (sources.length === 0) {
          source.stop = () => {
            source.stopped = true;
            return new Promise<void>((resolve) => {
              finishStop = () => {
                source.exit({ requested: true });
                resolve();
              };
            });
          };
        }
        sources.push(source);
        return source;
      },
    });
    hub.subscribe((_f, done) => done()).unsubscribe();
    await sleep(30);
    assert.equal(sources[0]?.stopped, true, 'the idle stop began');
    const got: string[] = [];
    hub.subscribe((frame, done) => {
      got.push(text(frame));
      done();
    });
    finishStop();
    assert.equal(sources.length, 2, 'a new capture for the newcomer');
    const [, second] = sources;
    assert.ok(second);
    second.frame('after');
    assert.deepEqual(got, ['after']);
    await hub.close();
  });

  it('restarts after the capture exits, keeps subscribers, and reports offline then online', async () => {
    const { hub, sources, current } = makeHub();
    const events: string[] = [];
    hub.on('offline', () => events.push('offline'));
    hub.on('online', () => events.push('online'));
    const got: string[] = [];
    hub.subscribe((frame, done) => {
      got.push(text(frame));
      done();
    });
    current().frame('a');
    current().exit();
    assert.equal(hub.state, 'offline');
    assert.equal(hub.online, false);
    assert.match(hub.lastError, /device vanished/);
    await sleep(60);
    assert.equal(sources.length, 2, 'restarted after the backoff');
    current().frame('b');
    assert.deepEqual(got, ['a', 'b']);
    assert.deepEqual(events, ['online', 'offline', 'online']);
    assert.equal(hub.state, 'streaming');
    await hub.close();
  });

  it('backs off exponentially while the capture keeps failing', async () => {
    const { hub, sources, current } = makeHub({ backoffInitialMs: 40, backoffMaxMs: 1000 });
    const delays: number[] = [];
    hub.on('restart', ({ delayMs }: { delayMs: number }) => delays.push(delayMs));
    hub.subscribe((_f, done) => done());
    for (let i = 0; i < 3; i++) {
      const before = sources.length;
      current().exit({ spawnError: new Error('spawn ffmpeg ENOENT') });
      while (sources.length === before) await sleep(5);
    }
    assert.deepEqual(delays, [40, 80, 160]);
    assert.match(hub.lastError, /ENOENT/);
    await hub.close();
  });

  it('restarts at the first delay again after a capture that streamed for a while (killed every so often)', async () => {
    const { hub, sources, current } = makeHub({ backoffInitialMs: 40, backoffMaxMs: 1000, healthyRunMs: 60 });
    const delays: number[] = [];
    hub.on('restart', ({ delayMs }: { delayMs: number }) => delays.push(delayMs));
    hub.subscribe((_f, done) => done());
    for (let i = 0; i < 4; i++) {
      // Frames for longer than healthyRunMs, then the capture dies.
      const first = Date.now();
      current().frame(`f${i}-first`);
      while (Date.now() - first < 80) await sleep(10);
      current().frame(`f${i}-last`);
      const before = sources.length;
      current().exit({ code: 1, stderr: 'killed' });
      while (sources.length === before) await sleep(5);
    }
    // One frame, then death at once: that start failed, and the delay grows again.
    current().frame('lone');
    current().exit({ code: 1, stderr: 'killed' });
    assert.deepEqual(delays, [40, 40, 40, 40, 80]);
    await hub.close();
  });

  it('restarts a capture that stops delivering frames (stall)', async () => {
    const { hub, sources, current } = makeHub({ stallTimeoutMs: 100 });
    hub.subscribe((_f, done) => done());
    current().frame('a');
    await sleep(400);
    assert.ok(sources.length >= 2, 'a new capture was started');
    assert.equal(sources[0]?.stopped, true);
    assert.match(hub.lastError, /stalled/);
    await hub.close();
  });

  it('treats a start without any frame as a failure', async () => {
    const { hub, sources } = makeHub({ startTimeoutMs: 100, stallTimeoutMs: 100 });
    hub.subscribe((_f, done) => done());
    await sleep(350);
    assert.ok(sources.length >= 2);
    assert.match(hub.lastError, /no first frame/);
    await hub.close();
  });

  it('answers a snapshot from the latest frame, or from the first frame of a new capture', async () => {
    const { hub, sources, current } = makeHub();
    const pending = hub.snapshot(1000, 1000);
    assert.equal(sources.length, 1, 'a snapshot starts the capture');
    current().frame('fresh');
    assert.equal(text(await pending), 'fresh');
    assert.equal(text(await hub.snapshot()), 'fresh', 'served from the cache while streaming');
    await hub.close();
  });

  it('fails a snapshot clearly when no frame comes', async () => {
    const { hub } = makeHub();
    await assert.rejects(hub.snapshot(1000, 50), /no frame within 50 ms/);
    await hub.close();
  });

  it('fails a waiting snapshot at once when the capture fails, with its reason', async () => {
    const { hub, current } = makeHub();
    const pending = hub.snapshot(1000, 5000);
    const started = Date.now();
    current().exit({ stderr: 'boom\n/dev/video0 does not exist: is the webcam plugged in?' });
    await assert.rejects(pending, /camera offline: \/dev\/video0 does not exist/);
    assert.ok(Date.now() - started < 1000);
    await hub.close();
  });

  it('detaches a consumer that throws and keeps serving the others', async () => {
    const { hub, current } = makeHub();
    const got: string[] = [];
    hub.subscribe(() => {
      throw new Error('broken consumer');
    });
    hub.subscribe((frame, done) => {
      got.push(text(frame));
      done();
    });
    current().frame('1');
    current().frame('2');
    assert.deepEqual(got, ['1', '2']);
    assert.equal(hub.consumerCount, 1);
    await hub.close();
  });

  it('keeps the restart backoff when only snapshots ask for a failing camera', async () => {
    const { hub, sources, current } = makeHub({ backoffInitialMs: 300, backoffMaxMs: 1000 });
    const first = hub.snapshot(1000, 2000);
    current().exit();
    await assert.rejects(first, /camera offline/);
    const second = hub.snapshot(1000, 100);
    assert.equal(sources.length, 1, 'no new ffmpeg inside the backoff');
    await assert.rejects(second, /no frame within 100 ms/);
    await sleep(350);
    assert.equal(sources.length, 1, 'nobody waits any more: nothing started');
    const third = hub.snapshot(1000, 1000);
    assert.equal(sources.length, 2, 'after the backoff, the next snapshot starts a capture at once');
    current().frame('back');
    assert.equal(text(await third), 'back');
    await hub.close();
  });

  it('ends a subscription made after close at once', async () => {
    const { hub } = makeHub();
    await hub.close();
    let closed = false;
    hub.subscribe(() => {}, { onClose: () => (closed = true) });
    assert.equal(closed, true);
  });

  it('stops everything on close and starts nothing after', async () => {
    const { hub, sources, current } = makeHub();
    hub.subscribe((_f, done) => done());
    await hub.close();
    assert.equal(current().stopped, true);
    hub.subscribe((_f, done) => done());
    assert.equal(sources.length, 1);
  });
});

describe('backoffDelay (util/backoff.ts)', () => {
  it('doubles from the first delay up to the cap, counting the failure just seen', () => {
    assert.deepEqual([1, 2, 3, 4, 11, 101].map((n) => backoffDelay(n, 500, 30_000)), [500, 1000, 2000, 4000, 30_000, 30_000], "the hub's numbers");
    assert.equal(backoffDelay(0, 500, 30_000), 500, 'no failure yet reads as the first');
    assert.equal(backoffDelay(10_000, 500, 30_000), 30_000, 'no overflow after a very long run of failures');
  });
});
