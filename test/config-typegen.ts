// Generates src/config-types.ts, the TypeScript types of the plugin's config, from config.schema.json:
// the shape the plugin reads after validation (src/config-validate.ts), where every key with a default
// (the schema's own, or the empty object or list of src/config-schema.ts standardSchema) is present.
// Run `npm run config-types` after changing the schema; test/config-schema.test.ts fails while the
// file is out of date.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { SchemaNode } from '../src/config-schema';
import { readConfigSchema, standardSchema } from '../src/config-schema';

export const CONFIG_TYPES_FILE = join(__dirname, '..', 'src', 'config-types.ts');

/** The interface name of each object of the schema, by its path. */
const NAMES: Record<string, string> = {
  '': 'PluginSettings',
  'cameras[]': 'CameraSettings',
  'cameras[].motion': 'MotionConfig',
  'cameras[].homekit': 'HomeKitConfig',
  'cameras[].homekit.recording': 'RecordingConfig',
  'cameras[].audio': 'AudioConfig',
  web: 'WebSettings',
  'web.tls': 'TlsSettings',
  'web.h264': 'H264ViewConfig',
  alerts: 'AlertsSettings',
  'alerts.ses': 'SesConfig',
  'alerts.smtp': 'SmtpConfig',
  'alerts.on': 'AlertTriggers',
  'alerts.publicIp': 'PublicIpConfig',
};

function wrap(text: string, indent: string): string[] {
  const width = 100 - indent.length - 3;
  const lines: string[] = [];
  let line = '';
  for (const word of text.replace(/\*\//g, '*\\/').split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

function doc(node: SchemaNode, indent: string): string[] {
  const { title, description } = node;
  const text = title && description ? `${title}${/[.:!?]$/.test(title) ? '' : '.'} ${description}` : (title ?? description);
  if (!text) return [];
  const lines = wrap(text, indent);
  if (lines.length === 1) return [`${indent}/** ${lines[0]} */`];
  return [`${indent}/**`, ...lines.map((line) => `${indent} * ${line}`), `${indent} */`];
}

/** Generates the file's text from a config.schema.json document's `schema`. */
export function generateConfigTypes(schema: SchemaNode): string {
  const interfaces: string[] = [];

  const typeOf = (node: SchemaNode, path: string): string => {
    if (node.enum) return node.enum.map((value) => JSON.stringify(value).replace(/^"|"$/g, "'")).join(' | ');
    if (node.anyOf) return node.anyOf.map((branch) => typeOf(branch, path)).join(' | ');
    if (Array.isArray(node.type)) return node.type.map((type) => typeOf({ type }, path)).join(' | ');
    switch (node.type) {
      case 'string':
        return 'string';
      case 'integer':
      case 'number':
        return 'number';
      case 'boolean':
        return 'boolean';
      case 'array': {
        const item = typeOf(node.items ?? {}, `${path}[]`);
        return item.includes(' ') ? `Array<${item}>` : `${item}[]`;
      }
      case 'object':
        if (node.properties) return emit(node, path);
        if (node.additionalProperties && typeof node.additionalProperties === 'object') return `Record<string, ${typeOf(node.additionalProperties, `${path}.*`)}>`;
        return 'Record<string, unknown>';
      default:
        return 'unknown';
    }
  };

  const emit = (node: SchemaNode, path: string): string => {
    const name = NAMES[path];
    if (!name) throw new Error(`config-typegen: name the object at "${path}" in NAMES`);
    const required = Array.isArray(node.required) ? node.required : [];
    const lines = [...doc(node, ''), `export interface ${name} {`];
    for (const [key, child] of Object.entries(node.properties ?? {})) {
      const present = child.default !== undefined || required.includes(key);
      lines.push(...doc(child, '  '), `  ${key}${present ? '' : '?'}: ${typeOf(child, path ? `${path}.${key}` : key)};`);
    }
    lines.push('}');
    interfaces.push(lines.join('\n'));
    return name;
  };

  typeOf(schema, '');
  return [
    '// Generated from config.schema.json by test/config-typegen.ts (`npm run config-types`): do not edit.',
    '// The config as the plugin reads it after validating it with the schema: a key with a default is',
    '// always there.',
    '',
    // Innermost first as emitted; the top-level interface last reads well enough, but put it first.
    ...[interfaces[interfaces.length - 1], ...interfaces.slice(0, -1)].map((text) => `${text}\n`),
  ].join('\n');
}

if (require.main === module) {
  writeFileSync(CONFIG_TYPES_FILE, generateConfigTypes(standardSchema(readConfigSchema().schema)));
  console.log(`Wrote ${CONFIG_TYPES_FILE}.`);
}
