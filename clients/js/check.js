// check.js parses the SDK with acorn at ecmaVersion 2017 (bridge.js as a
// module, bridge.classic.js as a classic script) and fails on names that
// Chromium 61 (CEP 9) lacks. Run: npm run check, or
// node check.js --stdin module|script < file.js to check one source.
import * as acorn from 'acorn';
import {readFileSync} from 'node:fs';
import {fileURLToPath} from 'node:url';
import {dirname, join} from 'node:path';

// Globals newer than Chromium 61, banned as identifiers anywhere.
const bannedIdentifiers = {
  globalThis: 'Chrome 71',
  AbortController: 'Chrome 66',
  AbortSignal: 'Chrome 66',
  queueMicrotask: 'Chrome 71',
  structuredClone: 'Chrome 98',
  WeakRef: 'Chrome 84',
  FinalizationRegistry: 'Chrome 84',
  BigInt: 'Chrome 67',
  AggregateError: 'Chrome 85',
};

// Methods newer than Chromium 61, banned as member names (x.name, x['name']).
const bannedMembers = {
  randomUUID: 'crypto.randomUUID, Chrome 92',
  finally: 'Promise.prototype.finally, Chrome 63',
  globalThis: 'Chrome 71',
  allSettled: 'Promise.allSettled, Chrome 76',
  any: 'Promise.any, Chrome 85',
  fromEntries: 'Object.fromEntries, Chrome 73',
  hasOwn: 'Object.hasOwn, Chrome 93',
  flat: 'Array.prototype.flat, Chrome 69',
  flatMap: 'Array.prototype.flatMap, Chrome 69',
  matchAll: 'String.prototype.matchAll, Chrome 73',
  replaceAll: 'String.prototype.replaceAll, Chrome 85',
  trimStart: 'String.prototype.trimStart, Chrome 66',
  trimEnd: 'String.prototype.trimEnd, Chrome 66',
  at: '.at(), Chrome 92',
  findLast: 'Array.prototype.findLast, Chrome 97',
  findLastIndex: 'Array.prototype.findLastIndex, Chrome 97',
};

const has = (obj, key) => Object.prototype.hasOwnProperty.call(obj, key);

// check returns the problems found in source, parsed as sourceType.
export function check(source, sourceType, name) {
  let ast;
  try {
    ast = acorn.parse(source, {ecmaVersion: 2017, sourceType, locations: true});
  } catch (e) {
    const loc = e.loc ? `${e.loc.line}:${e.loc.column + 1}` : '?';
    return [`${name}:${loc}: not ES2017 (${sourceType}): ${e.message}`];
  }
  const problems = [];
  const at = (node) => `${name}:${node.loc.start.line}:${node.loc.start.column + 1}`;
  const visit = (node) => {
    if (node.type === 'Identifier' && has(bannedIdentifiers, node.name)) {
      problems.push(`${at(node)}: ${node.name} is not in Chromium 61 (${bannedIdentifiers[node.name]})`);
    }
    if (node.type === 'MemberExpression') {
      let prop = null;
      if (!node.computed && node.property.type === 'Identifier') prop = node.property.name;
      if (node.computed && node.property.type === 'Literal' && typeof node.property.value === 'string') prop = node.property.value;
      if (prop !== null && has(bannedMembers, prop)) {
        problems.push(`${at(node.property)}: .${prop} is not in Chromium 61 (${bannedMembers[prop]})`);
      }
    }
    for (const key of Object.keys(node)) {
      if (key === 'loc') continue;
      const v = node[key];
      if (Array.isArray(v)) {
        for (const c of v) if (c && typeof c.type === 'string') visit(c);
      } else if (v && typeof v.type === 'string') {
        visit(v);
      }
    }
  };
  // Identifiers are checked wherever they stand, member names and object
  // keys included: stricter than needed, and never a false pass.
  visit(ast);
  return problems;
}

function main(argv) {
  let problems = [];
  if (argv[0] === '--stdin') {
    const sourceType = argv[1] === 'script' ? 'script' : 'module';
    problems = check(readFileSync(0, 'utf8'), sourceType, '<stdin>');
  } else {
    const dir = dirname(fileURLToPath(import.meta.url));
    for (const [file, sourceType] of [['bridge.js', 'module'], ['bridge.classic.js', 'script']]) {
      problems = problems.concat(check(readFileSync(join(dir, file), 'utf8'), sourceType, file));
    }
  }
  for (const p of problems) console.error(p);
  if (problems.length) process.exit(1);
  console.log('ok: ES2017, no names newer than Chromium 61');
}

main(process.argv.slice(2));
