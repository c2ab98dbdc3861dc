// Validates a raw platform block against config.schema.json (ajv) and repairs it the way users
// expect: a bad camera entry disables that camera, a bad SES or SMTP block turns that way of
// sending off, a bad optional value falls back to the schema's default, a bad entry of a list is
// skipped, and a key the schema does not know is reported and ignored. Each of these is one line
// that names the camera and key and says the fix, in the words of the settings form's own
// messages (the schema's `validationMessages`). What the schema cannot say (an IP range that
// parses, a camera name that is not taken) is checked by config.ts after this.
import Ajv from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';

import type { ConfigSchemaDoc, SchemaNode } from './config-schema';
import { configSchema, HOMEBRIDGE_KEYS, schemaNodeAt, standardSchema } from './config-schema';
import { isRecord } from './util/is-record';

type Path = Array<string | number>;
type Json = Record<string, unknown>;

/** What a failure inside them takes down: the whole of it, not just the value. */
const UNITS: Array<{ at: string[]; off: string }> = [
  { at: ['cameras', '[]'], off: 'this camera is disabled' },
  { at: ['alerts', 'ses'], off: 'SES is off' },
  { at: ['alerts', 'smtp'], off: 'SMTP is off' },
  { at: ['alerts'], off: 'alerts are off' },
];

/** What is left when one key of a pair (`dependencies`) is set without the other, which is then ignored. */
const PAIRS: Record<string, string> = {
  'web.tls': 'serving plain HTTP',
  'alerts.ses': 'using neither (the AWS SDK then finds credentials itself)',
};

export interface Validated {
  /** The block with defaults filled in and every bad value taken out (disabled cameras still in place). */
  data: Json;
  /** Indexes of `cameras` entries that are disabled. */
  disabled: Set<number>;
  problems: string[];
}

// ---- the validator, one per schema document (the tests validate against altered copies) ----

const compiled = new WeakMap<ConfigSchemaDoc, { validate: ValidateFunction; root: SchemaNode }>();

/** The standard schema with every object closed to unknown keys (Homebridge's own keys allowed at the top). */
function closed(node: SchemaNode, top = false): SchemaNode {
  const out: SchemaNode = { ...node };
  if (node.properties) {
    out.properties = Object.fromEntries(Object.entries(node.properties).map(([key, child]) => [key, closed(child)]));
    if (top) for (const key of HOMEBRIDGE_KEYS) out.properties[key] = {};
    if (node.additionalProperties === undefined) out.additionalProperties = false;
  }
  if (node.items) out.items = closed(node.items);
  if (node.anyOf) out.anyOf = node.anyOf.map((branch) => closed(branch));
  return out;
}

function validatorFor(doc: ConfigSchemaDoc): { validate: ValidateFunction; root: SchemaNode } {
  let entry = compiled.get(doc);
  if (!entry) {
    const root = standardSchema(doc.schema);
    // strict off: the form's keywords (placeholder, typeahead, validationMessages ...) are not ajv's.
    // coerceTypes 'array': "640" is 640, a single address is a list of one, as the plugin always took them.
    const ajv = new Ajv({ strict: false, allErrors: true, useDefaults: true, coerceTypes: 'array', verbose: true });
    entry = { validate: ajv.compile(closed(root, true)), root };
    compiled.set(doc, entry);
  }
  return entry;
}

// ---- paths and words ----

function parsePointer(pointer: string, data: unknown): Path {
  const path: Path = [];
  let node = data;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    const segment = Array.isArray(node) ? Number(key) : key;
    path.push(segment);
    node = isRecord(node) || Array.isArray(node) ? (node as Record<string | number, unknown>)[segment] : undefined;
  }
  return path;
}

function valueAt(data: unknown, path: Path): unknown {
  let node = data;
  for (const segment of path) {
    if (!isRecord(node) && !Array.isArray(node)) return undefined;
    node = (node as Record<string | number, unknown>)[segment];
  }
  return node;
}

/** The schema's view of a data path: array indexes as `[]`. */
function schemaPath(path: Path): string[] {
  return path.map((segment) => (typeof segment === 'number' ? '[]' : segment));
}

function unitOf(path: Path): { path: Path; off: string } | undefined {
  const generic = schemaPath(path);
  for (const unit of UNITS) {
    if (unit.at.every((segment, i) => generic[i] === segment)) return { path: path.slice(0, unit.at.length), off: unit.off };
  }
  return undefined;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `cameras[1] ("Porch").motion.sensitivity`, `"web.port"`, `"alerts.ses.to"`. */
function label(data: Json, path: Path): string {
  const keys = (segments: Path) =>
    segments.map((s, i) => (typeof s === 'number' ? `[${s}]` : IDENTIFIER.test(s) ? `${i === 0 ? '' : '.'}${s}` : `[${JSON.stringify(s)}]`)).join('');
  if (path[0] === 'cameras' && typeof path[1] === 'number') {
    const name = valueAt(data, ['cameras', path[1], 'name']);
    const rest = keys(path.slice(2));
    return `cameras[${path[1]}]${typeof name === 'string' ? ` (${JSON.stringify(name)})` : ''}${rest && !rest.startsWith('[') ? `.${rest}` : rest}`;
  }
  return `"${keys(path)}"`;
}

function shown(value: unknown): string {
  // JSON.stringify gives undefined for undefined, a function or a symbol (its type says string).
  const text = (JSON.stringify(value) as string | undefined) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** "Must be a device such as /dev/video0." -> "must be a device such as /dev/video0" */
function inline(message: string): string {
  return message.charAt(0).toLowerCase() + message.slice(1).replace(/\.$/, '');
}

function typeOf(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (value === null) return 'null';
  return typeof value === 'number' ? (Number.isInteger(value) ? 'integer' : 'number') : typeof value;
}

function matchesType(node: SchemaNode, value: unknown): boolean {
  const types = Array.isArray(node.type) ? node.type : node.type ? [node.type] : [];
  const actual = typeOf(value);
  return types.some((type) => type === actual || (type === 'number' && actual === 'integer'));
}

/** What a value must be, from its schema: `a whole number from 16 to 7680`, `true or false` ... */
export function expected(node: SchemaNode): string {
  if (node.anyOf) return node.anyOf.map(expected).join(', or ');
  if (node.enum) return `one of ${node.enum.join(', ')}`;
  const types = Array.isArray(node.type) ? node.type : [node.type];
  const words = types.map((type) => {
    switch (type) {
      case 'integer':
      case 'number': {
        const what = type === 'integer' ? 'a whole number' : 'a number';
        if (node.minimum !== undefined && node.maximum !== undefined) return `${what} from ${node.minimum} to ${node.maximum}`;
        if (node.minimum !== undefined) return `${what} of at least ${node.minimum}`;
        return what;
      }
      case 'boolean':
        return types.length > 1 ? 'true/false' : 'true or false';
      case 'string':
        return 'text';
      case 'array':
        return 'a list';
      case 'object': {
        const required = essentials(node);
        return required.length > 0 ? `an object with at least ${required.map((key) => `"${key}"`).join(' and ')}` : 'an object';
      }
      default:
        return String(type);
    }
  });
  return words.join(' or ');
}

/** The keys an object cannot do without: required, with no default to fall back on. */
function essentials(node: SchemaNode | undefined): string[] {
  const required = Array.isArray(node?.required) ? node.required : [];
  return required.filter((key) => node?.properties?.[key]?.default === undefined);
}

/** What taking a value out leaves: its default, or nothing. */
function fallback(node: SchemaNode | undefined): string {
  const value = node?.default;
  if (value === undefined || Array.isArray(value)) return 'ignoring it';
  if (isRecord(value)) return 'using the defaults';
  return `using ${shown(value)}`;
}

/** The sentence for a value that fails `error` at `where`: what it must be, and what happens now. */
function valueProblem(where: string, error: ErrorObject, node: SchemaNode, value: unknown, then: string): string {
  const message = node.validationMessages?.[error.keyword];
  if (message) return `${where} ${shown(value)} ${inline(message)}; ${then}.`;
  if (error.keyword === 'enum') return `${where} ${shown(value)} must be ${expected(node)}; ${then}.`;
  if (['type', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf', 'anyOf'].includes(error.keyword)) {
    return `${where} must be ${expected(node)} (got ${shown(value)}); ${then}.`;
  }
  return `${where} ${shown(value)} is not valid (${error.message ?? error.keyword}); ${then}.`;
}

/** The fix for a missing key, from the form's `required` message, else its example. */
function missingHint(node: SchemaNode | undefined): string | undefined {
  const message = node?.validationMessages?.required ?? node?.validationMessages?.minItems;
  if (message) return inline(message);
  const example = node?.placeholder ?? node?.items?.placeholder;
  return example ? `e.g. "${example}"` : undefined;
}

// ---- the repair ----

/** Spellings the plugin accepts besides the schema's (flask-cam's SMTP names, lists as text ...). */
interface FormMerge {
  normalizeForForm: (block: Json) => Json;
}
// The Homebridge UI turns the same spellings into the form's fields with this same function.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { normalizeForForm } = require('../homebridge-ui/public/form-merge.js') as FormMerge;

/** Strings trimmed; empty strings and nulls are values not given. */
function tidy(value: unknown): unknown {
  if (typeof value === 'string') return value.trim();
  if (Array.isArray(value)) return value.map(tidy).filter((item) => item !== '' && item !== null && item !== undefined);
  if (!isRecord(value)) return value;
  const out: Json = {};
  for (const [key, child] of Object.entries(value)) {
    const next = tidy(child);
    if (next !== '' && next !== null && next !== undefined) out[key] = next;
  }
  return out;
}

interface Repairs {
  /** Values to take out (list entries are removed, keys deleted). */
  remove: Path[];
  /** What is said about each value (left out when its unit is off). */
  said: Array<{ path: Path; text: string }>;
  /** Units off: the path, the sentences that say why, and the keys they miss. */
  off: Map<string, { path: Path; off: string; why: string[]; missing: string[] }>;
}

/** Validates and repairs a raw platform block. */
export function validateConfig(raw: Json, doc: ConfigSchemaDoc = configSchema()): Validated {
  const { validate, root } = validatorFor(doc);
  const data = tidy(normalizeForForm(raw)) as Json;
  const problems: string[] = [];
  const disabled = new Set<number>();
  const isOff = (path: Path) => path[0] === 'cameras' && typeof path[1] === 'number' && disabled.has(path[1]);

  for (let pass = 0; pass < 100; pass++) {
    if (validate(data)) break;
    const errors = (validate.errors ?? []).filter((error) => !isOff(parsePointer(error.instancePath, data)));
    if (errors.length === 0) break;
    const repairs: Repairs = { remove: [], said: [], off: new Map() };
    const say = (path: Path, text: string) => repairs.said.push({ path, text });
    const unitOff = (unit: { path: Path; off: string }, why?: string, missing?: string) => {
      const key = JSON.stringify(unit.path);
      const entry = repairs.off.get(key) ?? { ...unit, why: [], missing: [] };
      if (why) entry.why.push(why);
      if (missing && !entry.missing.includes(missing)) entry.missing.push(missing);
      repairs.off.set(key, entry);
    };

    const handle = (error: ErrorObject, all: ErrorObject[]): void => {
      const path = parsePointer(error.instancePath, data);
      const node = (error.parentSchema ?? {}) as SchemaNode;
      const value = valueAt(data, path);
      const unit = unitOf(path);
      const params = error.params as Record<string, unknown>;
      switch (error.keyword) {
        case 'additionalProperties': {
          const key = String(params.additionalProperty);
          say(path, `${label(data, [...path, key])} is not a setting of this plugin (a typo?); ignoring it.`);
          repairs.remove.push([...path, key]);
          return;
        }
        case 'required': {
          const key = String(params.missingProperty);
          if (unit && unit.path.length === path.length) unitOff(unit, undefined, key);
          else {
            say(path, `${label(data, path)} has no "${key}"; ignoring it.`);
            repairs.remove.push(path);
          }
          return;
        }
        case 'dependencies': {
          const key = String(params.property);
          const then = PAIRS[schemaPath(path).join('.')] ?? `ignoring "${key}"`;
          say(path, `${label(data, path)} needs both "${key}" and "${String(params.missingProperty)}", or neither; ${then}.`);
          repairs.remove.push([...path, key]);
          return;
        }
        case 'anyOf': {
          // Only the branch of the value's own type says what is wrong (a list: its bad entries).
          const branches = node.anyOf ?? [];
          const chosen = branches.findIndex((branch) => matchesType(branch, value));
          const inBranch = all.filter((other) => other.schemaPath.startsWith(`${error.schemaPath}/${chosen}/`));
          if (chosen >= 0 && inBranch.length > 0) {
            for (const other of inBranch) handle(other, all);
            return;
          }
          break;
        }
      }
      // A value that fails: its unit, its list entry, or the value alone goes.
      if (unit && unit.path.length === path.length) {
        unitOff(unit, valueProblem(label(data, path), error, node, value, unit.off));
        return;
      }
      const parent = path.length > 0 ? valueAt(data, path.slice(0, -1)) : undefined;
      if (Array.isArray(parent)) {
        say(path, valueProblem(`${label(data, path.slice(0, -1))} entry`, error, node, value, 'skipping it'));
        repairs.remove.push(path);
        return;
      }
      const unitSchema = unit ? schemaNodeAt(root, schemaPath(unit.path)) : undefined;
      const key = unit ? path[unit.path.length] : undefined;
      if (unit && typeof key === 'string' && essentials(unitSchema).includes(key)) {
        if (error.keyword === 'minItems') unitOff(unit, undefined, key);
        else unitOff(unit, valueProblem(label(data, path), error, node, value, unit.off));
        return;
      }
      say(path, valueProblem(label(data, path), error, node, value, fallback(node)));
      repairs.remove.push(path);
    };

    for (const error of errors) {
      if (error.schemaPath.includes('/anyOf/')) continue; // handled through its anyOf
      handle(error, errors);
    }

    // Units off: one line each (what they miss, or the value that takes them down); nothing else
    // is said about what they hold.
    const within = (path: Path, unit: { path: Path }) => unit.path.every((segment, i) => path[i] === segment);
    const offUnits = [...repairs.off.values()].filter((unit) => ![...repairs.off.values()].some((outer) => outer !== unit && within(unit.path, outer)));
    const inUnitOff = (path: Path) => isOff(path) || offUnits.some((unit) => within(path, unit));
    const lines = repairs.said.filter(({ path }) => !inUnitOff(path));
    for (const unit of offUnits) {
      const unitSchema = schemaNodeAt(root, schemaPath(unit.path));
      if (unit.missing.length > 0) {
        const hints = unit.missing.map((key) => ({ key, hint: missingHint(unitSchema?.properties?.[key]) }));
        const only = hints.length === 1 ? hints.at(0) : undefined;
        const text = only
          ? `has no "${only.key}"${only.hint ? `: ${only.hint}` : ''}`
          : `has no ${hints.map(({ key, hint }) => `"${key}"${hint ? ` (${hint})` : ''}`).join(' and no ')}`;
        unit.why.unshift(`${label(data, unit.path)} ${text}; ${unit.off}.`);
      }
      lines.push(...unit.why.map((text) => ({ path: unit.path, text })));
    }
    // In the schema's order of the top-level keys, cameras by their place in the list.
    const order = Object.keys(root.properties ?? {});
    const rank = (path: Path): [number, number] => [order.includes(String(path[0])) ? order.indexOf(String(path[0])) : order.length, typeof path[1] === 'number' ? path[1] : -1];
    lines.sort((a, b) => {
      const [x, y] = [rank(a.path), rank(b.path)];
      return x[0] - y[0] || x[1] - y[1];
    });
    problems.push(...lines.map(({ text }) => text));
    const remove = repairs.remove.filter((path) => !inUnitOff(path));
    for (const unit of offUnits) {
      const [first, index] = unit.path;
      if (first === 'cameras' && typeof index === 'number') disabled.add(index);
      else remove.push(unit.path);
    }
    // Deepest first, and the last entries of a list before the first, so that no path moves.
    remove.sort((a, b) => b.length - a.length || Number(b[b.length - 1]) - Number(a[a.length - 1]) || 0);
    for (const path of remove) {
      const parent = valueAt(data, path.slice(0, -1));
      const last = path.at(-1);
      if (Array.isArray(parent) && typeof last === 'number') parent.splice(last, 1);
      else if (isRecord(parent) && last !== undefined) Reflect.deleteProperty(parent, last);
    }
    if (remove.length === 0 && offUnits.length === 0) break;
  }
  return { data, disabled, problems: [...new Set(problems)] };
}

/**
 * The settings form's message for a value of `path` (`web.trustedNetworks[]`) that fails its check,
 * as part of a sentence: "must be an IP address or a CIDR range such as 192.168.1.0/24".
 */
export function patternMessage(path: string, doc: ConfigSchemaDoc = configSchema()): string {
  const segments = path.split('.').flatMap((part) => (part.endsWith('[]') ? [part.slice(0, -2), '[]'] : [part]));
  const message = schemaNodeAt(validatorFor(doc).root, segments)?.validationMessages?.pattern;
  return message ? inline(message) : 'is not valid';
}
