// The one per-address failure window (src/util/failure-window.ts) under the web lockout and the
// failed-login alert: counting within the window, and bounded memory that keeps what matters.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { PerAddressFailures } from '../src/util/failure-window';

describe('PerAddressFailures', () => {
  it('counts failures per address within the window only, with the user names tried', () => {
    const window = new PerAddressFailures({ windowMs: 1_000, initial: () => undefined });
    window.add('a', 0, 'root');
    window.add('b', 10);
    window.add('a', 500, 'pi');
    assert.deepEqual(window.entry('a', 999).failures, [{ at: 0, user: 'root' }, { at: 500, user: 'pi' }]);
    assert.deepEqual(window.entry('a', 1_000).failures, [{ at: 500, user: 'pi' }], 'the first one left the window');
    window.forget('a');
    assert.equal(window.peek('a'), undefined);
    assert.equal(window.peek('b')?.failures.length, 1);
  });

  it('counts under the key the caller chooses', () => {
    const window = new PerAddressFailures({ windowMs: 1_000, keyOf: (address) => address.split(':')[0] ?? address, initial: () => 0 });
    window.add('host:1', 0);
    window.add('host:2', 1);
    assert.equal(window.entry('host:3', 2).failures.length, 2);
    assert.equal(window.size, 1);
  });

  it('stays within its limit: forgets quiet addresses first, then the oldest not pinned; pinned ones only past ten times the limit', () => {
    const window = new PerAddressFailures<{ locked: boolean }>({ windowMs: 1_000, maxAddresses: 3, initial: () => ({ locked: false }), pinned: (state) => state.locked });
    window.add('quiet', 0);
    window.add('locked', 900).state.locked = true;
    window.add('busy', 900);
    window.add('new', 1_500);
    assert.equal(window.peek('quiet'), undefined, 'its failures had left the window');
    assert.ok(window.peek('locked') && window.peek('busy') && window.peek('new'));
    window.add('newer', 1_600);
    assert.equal(window.peek('busy'), undefined, 'the oldest that is not pinned');
    assert.ok(window.peek('locked'), 'a pinned address stays');
    for (const address of ['new', 'newer']) window.entry(address, 1_600).state.locked = true;
    for (let i = 0; i < 100; i++) window.add(`x${i}`, 1_700).state.locked = true;
    assert.ok(window.size <= 30, `at most ten times the limit when every address is pinned (${window.size})`);
  });
});
