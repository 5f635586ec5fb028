// Which @e2b/code-interpreter release the SDK tests drive. run.sh sets
// E2BCI_SDK_DIR to a directory holding its own package-lock.json and
// node_modules: tests/sdk itself (the current release) or one of the older
// releases in tests/sdk/releases/<version>. The package is resolved from
// that directory exactly as `import ... from '@e2b/code-interpreter'` in an
// application there would resolve it, so the release's own `e2b` comes with
// it.
//
// Older releases lack some methods. HAS tells a test what the release has,
// so a test skips (with the reason) what the release cannot do instead of
// the daemon being asked for less.

import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const require = createRequire(join(process.env.E2BCI_SDK_DIR || here, 'package.json'))
const entry = require.resolve('@e2b/code-interpreter')
const sdk = await import(pathToFileURL(entry).href)

export const SDK_VERSION = require('@e2b/code-interpreter/package.json').version

export const { Sandbox, NotFoundError, TimeoutError } = sdk

// What a release has that older ones lack: feature -> the methods it needs.
// Context management besides createCodeContext (list, restart, remove) came
// with 2.3 (2.3.1 on npm); 1.x up to 2.2 only create contexts.
const FEATURES = {
  contextManagement: ['listCodeContexts', 'restartCodeContext', 'removeCodeContext'],
}
export const HAS = Object.fromEntries(
  Object.entries(FEATURES).map(([f, methods]) => [
    f,
    methods.every((m) => typeof Sandbox.prototype[m] === 'function'),
  ])
)

// A node:test `skip` value: false when the release has the feature, else
// the reason.
export function unless(feature) {
  if (HAS[feature]) return false
  return `@e2b/code-interpreter ${SDK_VERSION} has no ${FEATURES[feature].join(', ')}`
}

// Where the SDKs send everything in debug mode (run.sh starts the daemon
// there).
export const DEBUG_URL = 'http://localhost:49999'

// Cleanup after a test: remove a context the test created. A release
// without removeCodeContext cannot, so the request goes to the daemon
// directly; that is housekeeping, not a check, so failures are ignored.
export async function removeContext(sbx, ctx) {
  try {
    if (HAS.contextManagement) {
      await sbx.removeCodeContext(ctx)
    } else {
      await fetch(`${DEBUG_URL}/contexts/${encodeURIComponent(ctx.id)}`, {
        method: 'DELETE',
        signal: AbortSignal.timeout(10_000),
      })
    }
  } catch {
    // Already gone, or the daemon is; run.sh checks what is left.
  }
}
