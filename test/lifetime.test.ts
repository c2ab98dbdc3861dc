// One teardown point per object (src/util/lifetime.ts): the teardown runs once, with the first
// reason, its synchronous part inside abort(); a lease's end runs once however often it is called.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { once, whenAborted } from '../src/util/lifetime';

describe('whenAborted', () => {
  it('runs the teardown once, with the first reason, its synchronous part before abort() returns', async () => {
    const controller = new AbortController();
    const steps: string[] = [];
    const done = whenAborted(controller.signal, async (reason) => {
      steps.push(`teardown ${String(reason)}`);
      await new Promise((resolve) => setImmediate(resolve));
      steps.push('teardown done');
    });
    controller.abort('stopped');
    steps.push('abort returned');
    controller.abort('exited');
    await done;
    assert.deepEqual(steps, ['teardown stopped', 'abort returned', 'teardown done']);
  });

  it('runs at once on a signal already aborted, and its promise never rejects', async () => {
    const errors: unknown[] = [];
    let ran = false;
    await whenAborted(AbortSignal.abort('gone'), () => {
      ran = true;
      throw new Error('teardown failed');
    }, (error) => errors.push(error));
    assert.equal(ran, true);
    assert.match(String(errors[0]), /teardown failed/);
    await whenAborted(AbortSignal.abort(), () => Promise.reject(new Error('later')));
  });
});

describe('once', () => {
  it('runs the function on the first call only', () => {
    let calls = 0;
    const release = once(() => calls++);
    release();
    release();
    assert.equal(calls, 1);
  });
});
