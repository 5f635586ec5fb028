// What every SDK test file shares: its one Sandbox, the code contexts it
// makes and scratch directories. Run through run.sh, which starts the daemon
// on localhost:49999 and sets E2B_DEBUG=true (in debug mode Sandbox.create()
// makes no API call and every code-interpreter request goes to
// http://localhost:49999), E2BCI_SDK_CWD (the daemon's --cwd, the default
// context's directory) and E2BCI_SDK_TMP (a scratch directory the tests may
// create folders in).

import { after, before } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, realpathSync } from 'node:fs'
import { join } from 'node:path'

import { Sandbox, removeContext } from './sdk.mjs'

export const CWD = process.env.E2BCI_SDK_CWD
export const TMP = process.env.E2BCI_SDK_TMP

// The file's Sandbox: set by the before hook useSandbox() registers (an
// exported let is a live binding, so tests see it).
export let sbx
const made = []

// Registers the file's hooks: before its tests the environment is checked,
// the Sandbox made and then setup() run, if given (in the same hook: Node 20
// runs a file's top-level before hooks concurrently); after them every
// context newContext made is removed.
export function useSandbox(setup) {
  before(async () => {
    assert.equal(process.env.E2B_DEBUG, 'true', 'run through tests/sdk/run.sh')
    assert.ok(CWD && TMP, 'E2BCI_SDK_CWD and E2BCI_SDK_TMP must be set (run.sh)')
    sbx = await Sandbox.create()
    if (setup) await setup()
  })
  after(async () => {
    for (const ctx of made) {
      await removeContext(sbx, ctx)
    }
  })
}

// A new code context, removed after the file's tests.
export async function newContext(opts) {
  return removeLater(await sbx.createCodeContext(opts))
}

// ctx (made some other way) is removed after the file's tests too.
export function removeLater(ctx) {
  made.push(ctx)
  return ctx
}

// A directory under E2BCI_SDK_TMP (made if need be), its real path.
export function scratchDir(name) {
  const d = join(TMP, name)
  mkdirSync(d, { recursive: true })
  return realpathSync(d)
}

// The execution, after checking that it has no error.
export function noError(execution) {
  assert.equal(execution.error, undefined, `unexpected error: ${JSON.stringify(execution.error)}`)
  return execution
}
