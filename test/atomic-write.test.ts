// The one file writer (src/util/atomic-write.ts): the new content whole or the old one, the mode
// asked for whatever the file had, no temp file left by a failed write, stale ones removed.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { removeStaleTempFiles, STALE_TEMP_MS, tempPathFor, writeFileAtomic } from '../src/util/atomic-write';
import { tempDir } from './helpers';

describe('writeFileAtomic', () => {
  it('replaces a file with the new content, mode 0600 by default, even over a file that was 0644', async () => {
    const dir = tempDir();
    const file = join(dir, 'state');
    writeFileSync(file, 'old\n');
    chmodSync(file, 0o644);
    await writeFileAtomic(file, 'new\n');
    assert.equal(readFileSync(file, 'utf8'), 'new\n');
    assert.equal((statSync(file).mode & 0o777).toString(8), '600');
    await writeFileAtomic(file, 'shared\n', { mode: 0o640 });
    assert.equal((statSync(file).mode & 0o777).toString(8), '640');
    assert.deepEqual(readdirSync(dir), ['state'], 'no temp file left');
  });

  it('a write that fails leaves the old state and no temp file', async () => {
    const dir = tempDir();
    const target = join(dir, 'taken');
    mkdirSync(target); // renaming a file over a folder fails (EISDIR) after the temp file was written
    await assert.rejects(writeFileAtomic(target, 'data'), /EISDIR|ENOTEMPTY|EEXIST|EPERM/);
    assert.deepEqual(readdirSync(dir), ['taken']);
    await assert.rejects(writeFileAtomic(join(dir, 'no', 'such', 'file'), 'data'), /ENOENT/);
  });

  it('removes temp files a killed writer left once they are stale, and only those of its own file', async () => {
    const dir = tempDir();
    const file = join(dir, 'users');
    const stale = tempPathFor(file);
    const fresh = tempPathFor(file);
    const other = tempPathFor(join(dir, 'public-ip'));
    for (const temp of [stale, fresh, other]) writeFileSync(temp, 'half');
    const past = new Date(Date.now() - STALE_TEMP_MS - 60_000);
    utimesSync(stale, past, past);
    utimesSync(other, past, past);
    assert.deepEqual(await removeStaleTempFiles(file), [stale]);
    await writeFileAtomic(join(dir, 'public-ip'), '203.0.113.7\n');
    assert.deepEqual(readdirSync(dir).sort(), [fresh, join(dir, 'public-ip')].map((p) => p.slice(dir.length + 1)).sort(), 'the next write of public-ip removed its stale temp file');
  });
});
