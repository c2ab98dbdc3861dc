// The one HTML escaper (src/util/escape-html.ts), as the pages and the alert emails use it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { motionAlert } from '../src/alerts/messages';
import { escapeHtml } from '../src/util/escape-html';

describe('escapeHtml', () => {
  it('escapes the five characters that matter in text and quoted attributes, and nothing else', () => {
    assert.equal(escapeHtml(`<a href="x" title='y'>Tom & Jerry</a>`), '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;Tom &amp; Jerry&lt;/a&gt;');
    assert.equal(escapeHtml('Porch é 1/2 ü'), 'Porch é 1/2 ü');
    assert.equal(escapeHtml('&amp;'), '&amp;amp;', 'escaping twice shows the escaped text, as it should');
  });

  it('is what the alert emails use for a camera name', () => {
    const alert = motionAlert({ id: 'x', name: '<img src=x onerror="alert(1)">' }, Buffer.alloc(0), 10, { siteName: 'Cabin & Co', at: new Date(0) });
    assert.doesNotMatch(alert.html, /<img src=x/);
    assert.match(alert.html, /&lt;img src=x onerror=&quot;alert\(1\)&quot;&gt;/);
    assert.match(alert.html, /Cabin &amp; Co/);
  });
});
