// config.schema.json as the plugin's one description of its config: a key it does not know is
// reported, a camera without a name or with another's name is disabled, every pattern's failure is
// said in the settings form's words, a list of choices offers no empty choice, every default the
// plugin applies comes from the schema (and no file restates one), and src/config-types.ts is what
// the schema generates.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { normalizeConfig } from '../src/config';
import type { ConfigSchemaDoc, SchemaNode } from '../src/config-schema';
import { readConfigSchema, standardSchema } from '../src/config-schema';
import { CONFIG_TYPES_FILE, generateConfigTypes } from './config-typegen';

type Json = Record<string, unknown>;

const ROOT = join(__dirname, '..');
const doc = readConfigSchema();
const ses = { region: 'us-west-2', from: 'cam@example.com', to: ['me@example.com'] };
const smtp = { host: 'smtp.example.com', from: 'cam@example.com', to: ['me@example.com'] };

/** Every node of the schema with its path (`cameras[].source`, `web.trustProxy[]`), anyOf branches included. */
function nodes(node: SchemaNode, path = ''): Array<{ path: string; node: SchemaNode }> {
  const out = [{ path, node }];
  for (const [key, child] of Object.entries(node.properties ?? {})) out.push(...nodes(child, path ? `${path}.${key}` : key));
  if (node.items) out.push(...nodes(node.items, `${path}[]`));
  for (const branch of node.anyOf ?? []) if (branch.items) out.push(...nodes(branch.items, `${path}[]`));
  return out;
}

/** A copy of `config` with `value` at a schema path; a list path gets a list of that one value. */
function withValue(config: Json, path: string, value: unknown): Json {
  const copy = structuredClone(config);
  const keys = path.split('.');
  let node: Json = copy;
  keys.forEach((key, i) => {
    const list = key.endsWith('[]');
    const name = list ? key.slice(0, -2) : key;
    const last = i === keys.length - 1;
    if (last) node[name] = list ? [value] : value;
    else if (list) {
      const [first] = node[name] as Json[];
      assert.ok(first, `${path}: no list entry at ${name}`);
      node = first;
    }
    else node = (node[name] ??= {}) as Json;
  });
  return copy;
}

/** "Must be a host name." -> "must be a host name", as the plugin's log line has it. */
function inline(message: string): string {
  return message.charAt(0).toLowerCase() + message.slice(1).replace(/\.$/, '');
}

describe('config.schema.json, the plugin\'s one config truth', () => {
  it('reports keys it does not know (typos), ignores them, and disables nothing for them', () => {
    const { config, problems, cameraIds } = normalizeConfig({
      platform: 'WebcamServer',
      _bridge: { username: '0E:11:22:33:44:55', port: 51000 },
      name: 'Home',
      bogus: 1,
      cameras: [{ name: 'Porch', source: 'testsrc', zoom: 2, motion: { sensitivty: 80 }, controls: { Zoom: 3 } }],
      web: { bogusKey: true, port: 8282 },
      alerts: { ses: { ...ses, reigon: 'eu-west-1' } },
    });
    assert.deepEqual(problems, [
      'cameras[0] ("Porch").zoom is not a setting of this plugin (a typo?); ignoring it.',
      'cameras[0] ("Porch").motion.sensitivty is not a setting of this plugin (a typo?); ignoring it.',
      '"web.bogusKey" is not a setting of this plugin (a typo?); ignoring it.',
      '"alerts.ses.reigon" is not a setting of this plugin (a typo?); ignoring it.',
      '"bogus" is not a setting of this plugin (a typo?); ignoring it.',
    ]);
    assert.deepEqual(cameraIds, ['porch'], 'the camera runs');
    assert.equal(config.cameras[0]?.motion.sensitivity, 50, 'the misspelt key is not taken');
    assert.deepEqual(config.cameras[0].controls, { Zoom: 3 }, "a camera's control names are its own, not the schema's");
    assert.equal(config.web.port, 8282, 'the rest of the block is taken');
    assert.equal(config.alerts?.ses?.region, 'us-west-2', 'SES stays on');
    assert.ok(!('bogusKey' in config.web));
  });

  it('disables a camera without a name, and the later of two cameras whose names make the same address', () => {
    const { config, problems, cameraIds } = normalizeConfig({
      cameras: [
        { name: 'Front Porch', source: 'testsrc' },
        { source: 'testsrc' },
        { name: '  ', source: 'testsrc' },
        { name: 'front porch!', source: '/dev/video1' },
        { name: 'Garden', source: 'testsrc' },
        { name: 'Front Porch', source: '/dev/video2' },
      ],
    });
    assert.deepEqual(config.cameras.map((c) => [c.name, c.id]), [['Front Porch', 'front-porch'], ['Garden', 'garden']]);
    assert.deepEqual(cameraIds, ['front-porch', undefined, undefined, undefined, 'garden', undefined], 'the id of each entry, by its place in the list');
    assert.deepEqual(problems, [
      'cameras[1] has no "name": give the camera a name: its slug is its address in URLs (Front Porch: /cameras/front-porch/); this camera is disabled.',
      'cameras[2] has no "name": give the camera a name: its slug is its address in URLs (Front Porch: /cameras/front-porch/); this camera is disabled.',
      'cameras[3] ("front porch!") has the address /cameras/front-porch/ of cameras[0] ("Front Porch") already: give it a name of its own; this camera is disabled.',
      'cameras[5] ("Front Porch") has the address /cameras/front-porch/ of cameras[0] ("Front Porch") already: give it a name of its own; this camera is disabled.',
    ]);
  });

  it("says every pattern's failure in the settings form's own words, with an example", () => {
    const base: Json = { name: 'Home', cameras: [{ name: 'Porch', source: 'testsrc' }], alerts: { ses, smtp } };
    const patterned = nodes(standardSchema(doc.schema)).filter(({ node }) => node.pattern);
    assert.ok(patterned.length >= 18, `${patterned.length} patterns`);
    for (const { path, node } of patterned) {
      const message = node.validationMessages?.pattern;
      assert.ok(message, `${path} has a validationMessages.pattern for the form`);
      assert.match(message, /^Must be .*(such as|e\.g\.) .+\.$/, `${path}: says what it must be, with an example`);
      assert.doesNotMatch(message, /\^|\$\)|\\S/, `${path}: no regex in the words`);
      const { problems } = normalizeConfig(withValue(base, path, 'a b'));
      assert.ok(
        problems.some((problem) => problem.includes(`"a b" ${inline(message)}; `)),
        `${path}: the plugin says it the same way; got ${JSON.stringify(problems)}`,
      );
    }
  });

  it('offers no empty choice in a list of choices: each is required, with a default', () => {
    const selects = nodes(doc.schema).filter(({ node }) => node.enum || node.oneOf);
    assert.deepEqual(selects.map(({ path }) => path).sort(), ['cameras[].controlsTool', 'cameras[].homekit.encoder']);
    for (const { path, node } of selects) {
      // The form adds a "None" choice to a select unless the field is required.
      assert.equal(node.required, true, `${path} is required`);
      assert.notEqual(node.default, undefined, `${path} has a default`);
    }
  });

  it('takes every default from the schema: a changed default changes the config', () => {
    // Every default of the schema changed to another valid value.
    const changed = structuredClone<ConfigSchemaDoc>(doc);
    const expected: Array<[string, unknown]> = [];
    for (const { path, node } of nodes(changed.schema)) {
      const value = node.default;
      let other: unknown;
      if (typeof value === 'boolean') other = !value;
      else if (typeof value === 'number') other = node.maximum !== undefined && value + 1 > node.maximum ? value - 1 : value + 1;
      else if (typeof value === 'string') other = node.oneOf ? node.oneOf.map((choice) => choice.enum?.[0]).find((v) => v !== value) : `${value}x`;
      else continue;
      node.default = other;
      expected.push([path, other]);
    }
    assert.ok(expected.length >= 35, `${expected.length} defaults`);
    const { config, problems } = normalizeConfig({ cameras: [{ name: 'Porch', source: 'testsrc' }], alerts: { smtp } }, changed);
    assert.deepEqual(problems, []);
    for (const [path, value] of expected) {
      let node: unknown = config;
      for (const key of path.split('.')) node = key.endsWith('[]') ? (node as Json)[key.slice(0, -2)] && ((node as Json)[key.slice(0, -2)] as unknown[])[0] : (node as Json)[key];
      assert.deepEqual(node, path === 'cameras[].inputFormat' ? String(value).toLowerCase() : value, path);
    }
  });

  it('has no default restated in the code that reads the config', () => {
    // Values that can only be these defaults (a round number such as 1000 is also a timer elsewhere).
    const distinct = nodes(doc.schema)
      .map(({ node }) => node.default)
      .filter((value): value is number | string => (typeof value === 'number' && value >= 100 && value % 100 !== 0) || (typeof value === 'string' && value.includes('.opendns.')));
    assert.deepEqual(distinct.filter((value) => typeof value === 'number').sort(), [1280, 587, 720, 8181]);
    const files = ['src/config.ts', 'src/alerts/config.ts', 'src/config-validate.ts', 'src/ui/plugin-snapshot.ts', 'src/ui/handlers.ts', 'homebridge-ui/public/form-merge.js', 'homebridge-ui/public/app.js'];
    for (const file of files) {
      const text = readFileSync(join(ROOT, file), 'utf8');
      for (const value of distinct) {
        const literal = typeof value === 'number' ? new RegExp(`(?<![\\w.])${String(value).split('').join('_?')}(?![\\w.])`) : new RegExp(value.replace(/\./g, '\\.'));
        assert.ok(!literal.test(text), `${file} restates the default ${value}`);
      }
    }
  });

  it('has types generated from the schema (src/config-types.ts is up to date: npm run config-types)', () => {
    assert.equal(readFileSync(CONFIG_TYPES_FILE, 'utf8'), generateConfigTypes(standardSchema(doc.schema)));
  });
});
