// plan.mjs: template/template.mjs as the VM tier replays it (tests/vm/build.py).
//
// Run from template/ (where the SDK is installed) as
//   node --input-type=module -e "$(cat ../tests/vm/plan.mjs)"
// It prints one JSON object: the build request E2B would get (base image,
// steps, start and ready commands, with the SDK's own hash of the files of
// each COPY step) and, for every COPY step, the files the SDK would upload
// for it, found the way the SDK finds them (its glob over the file context
// with the template's ignore patterns and .dockerignore).
import fs from 'node:fs'
import path from 'node:path'

import { Template } from 'e2b'
import { glob } from 'glob'

import { makeTemplate, IGNORE, ROOT } from './template.mjs'

function dockerignore () {
  const f = path.join(ROOT, '.dockerignore')
  if (!fs.existsSync(f)) return []
  return fs.readFileSync(f, 'utf-8').split('\n').map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
}

const ignore = [...IGNORE, ...dockerignore()]
const opts = { ignore, withFileTypes: true, dot: true, cwd: ROOT }

function kind (f) {
  if (f.isSymbolicLink()) return 'symlink'
  return f.isDirectory() ? 'dir' : 'file'
}

// What the SDK's getAllFilesInPath returns for one source: the matches, and
// everything under a matching directory.
async function filesOf (src) {
  const found = new Map()
  for (const f of await glob(src, opts)) {
    found.set(f.relativePosix() || '.', kind(f))
    if (f.isDirectory()) {
      const below = path.posix.join(f.relativePosix() || '.', '**/*')
      for (const g of await glob(below, opts)) found.set(g.relativePosix(), kind(g))
    }
  }
  return [...found.entries()].sort().map(([p, k]) => ({ path: p, kind: k }))
}

const request = JSON.parse(await Template.toJSON(makeTemplate(), true))
for (const step of request.steps) {
  if (step.type === 'COPY') step.files = await filesOf(step.args[0])
}
process.stdout.write(JSON.stringify({ root: ROOT, ...request }))
