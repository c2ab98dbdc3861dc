// config.schema.json is the one description of the plugin's config: the Homebridge UI draws the
// settings form from it, the plugin validates every platform block with it and takes its defaults
// from it, and src/config-types.ts is generated from it. This file reads it and turns the form's
// dialect into the standard JSON schema the validator (ajv) and the type generator read.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { isRecord } from './util/is-record';

/** One node of the schema, as far as this package reads it. */
export interface SchemaNode {
  type?: string | string[];
  title?: string;
  description?: string;
  default?: unknown;
  placeholder?: string;
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  additionalProperties?: SchemaNode | boolean;
  required?: string[] | boolean;
  enum?: unknown[];
  oneOf?: SchemaNode[];
  anyOf?: SchemaNode[];
  dependencies?: Record<string, string[]>;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  pattern?: string;
  /** The settings form's messages by failed keyword (`pattern`, `required` ...); the plugin's log lines use them too. */
  validationMessages?: Record<string, string>;
  [keyword: string]: unknown;
}

/** config.schema.json: Homebridge's plugin fields, the settings form's `schema` and its `layout`. */
export interface ConfigSchemaDoc {
  pluginAlias: string;
  schema: SchemaNode;
  layout: unknown[];
  [key: string]: unknown;
}

/** Next to src/ and to dist/ alike: the package root. */
export const CONFIG_SCHEMA_FILE = join(__dirname, '..', 'config.schema.json');

export function readConfigSchema(file = CONFIG_SCHEMA_FILE): ConfigSchemaDoc {
  return JSON.parse(readFileSync(file, 'utf8')) as ConfigSchemaDoc;
}

let shipped: ConfigSchemaDoc | undefined;

/** The package's own config.schema.json, read once. */
export function configSchema(): ConfigSchemaDoc {
  shipped ??= readConfigSchema();
  return shipped;
}

/** Keys Homebridge itself keeps in a platform block beside the plugin's own. */
export const HOMEBRIDGE_KEYS = ['platform', '_bridge'];

/** A `oneOf` of titled single values (how the form gets labelled choices): those values. */
function choices(node: SchemaNode): unknown[] | undefined {
  const list = node.oneOf;
  if (!Array.isArray(list)) return undefined;
  const values: unknown[] = [];
  for (const choice of list) {
    if (!Array.isArray(choice.enum) || choice.enum.length !== 1) return undefined;
    values.push(...choice.enum);
  }
  return values;
}

/** True when validating an empty object against `node` fills in at least one default. */
function holdsDefaults(node: SchemaNode): boolean {
  return Object.values(node.properties ?? {}).some((child) => child.default !== undefined || (child.type === 'object' && holdsDefaults(child)));
}

/** True when an object (standard schema) has a required key with no default: it cannot be made up. */
function needsKeys(node: SchemaNode): boolean {
  const required = Array.isArray(node.required) ? node.required : [];
  return required.some((key) => node.properties?.[key]?.default === undefined);
}

/**
 * The schema as standard JSON schema, meaning what the plugin reads after validation:
 * - the form's `"required": true` on a property becomes its parent's `required` list;
 * - a `oneOf` of titled single values (the form's labelled choices) becomes an `enum`;
 * - an object that holds defaults and needs no key without one (`motion`, `web` ...) defaults to
 *   `{}`, so its defaults are filled in when it is left out; so does a map of names (`controls`);
 *   a list defaults to the empty list.
 * Keywords only the form reads (placeholder, typeahead, validationMessages ...) stay: ajv ignores them.
 */
export function standardSchema(node: SchemaNode): SchemaNode {
  const out: SchemaNode = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'required' && typeof value === 'boolean') continue;
    if (key === 'properties' && isRecord(value)) {
      out.properties = Object.fromEntries(Object.entries(value).map(([name, child]) => [name, standardSchema(child as SchemaNode)]));
    } else if ((key === 'items' || key === 'additionalProperties') && isRecord(value)) {
      out[key] = standardSchema(value);
    } else if (key === 'anyOf' && Array.isArray(value)) {
      out.anyOf = (value as SchemaNode[]).map(standardSchema);
    } else {
      out[key] = value;
    }
  }
  const values = choices(node);
  if (values) {
    delete out.oneOf;
    out.enum = values;
  }
  if (node.properties) {
    const required = Object.entries(node.properties)
      .filter(([, child]) => child.required === true)
      .map(([name]) => name);
    const listed = Array.isArray(node.required) ? node.required : [];
    const all = [...listed, ...required];
    if (all.length > 0) out.required = all;
    for (const [name, child] of Object.entries(out.properties ?? {})) {
      if (child.default !== undefined || all.includes(name)) continue;
      if (child.type === 'array') child.default = [];
      else if (child.type === 'object' && !needsKeys(child) && (holdsDefaults(child) || isRecord(child.additionalProperties))) child.default = {};
    }
  }
  return out;
}

/** `cameras[].motion.enabled` as the path segments of a schema walk: `cameras`, `[]`, `motion`, `enabled`. */
export function schemaNodeAt(root: SchemaNode, path: ReadonlyArray<string | number>): SchemaNode | undefined {
  let node: SchemaNode | undefined = root;
  for (const segment of path) {
    if (!node) return undefined;
    if (typeof segment === 'number' || segment === '[]') node = node.items ?? node.anyOf?.find((branch) => branch.items)?.items;
    else node = node.properties?.[segment] ?? (isRecord(node.additionalProperties) ? node.additionalProperties : undefined);
  }
  return node;
}
