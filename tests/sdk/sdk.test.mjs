// The official E2B SDK (@e2b/code-interpreter from npm, unmodified) against
// e2b-ci. Run through run.sh (see sandbox.mjs for what it sets up), once per
// SDK release (sdk.mjs); a check needing a method the release lacks is
// skipped with the reason.

import { test } from 'node:test'
import assert from 'node:assert/strict'

import { NotFoundError, Sandbox, TimeoutError, unless } from './sdk.mjs'

import { CWD, newContext, removeLater, sbx, scratchDir, useSandbox } from './sandbox.mjs'

const T = { timeout: 60_000 }
// Tests of listCodeContexts, restartCodeContext and removeCodeContext.
const CTX = { ...T, skip: unless('contextManagement') }

useSandbox()

test('runCode 1+1', T, async () => {
  const execution = await sbx.runCode('1+1')
  assert.equal(execution.text, '2')
  assert.equal(execution.results.length, 1)
  assert.equal(execution.results[0].isMainResult, true)
  assert.equal(execution.results[0].text, '2')
  assert.deepEqual(execution.results[0].extra, {})
  assert.equal(execution.error, undefined)
  assert.equal(typeof execution.executionCount, 'number')
  assert.deepEqual(execution.logs, { stdout: [], stderr: [] })
})

test('callbacks see stdout, stderr, results and errors', T, async () => {
  const seen = { stdout: [], stderr: [], results: [], errors: [] }
  const opts = {
    onStdout: (m) => seen.stdout.push(m),
    onStderr: (m) => seen.stderr.push(m),
    onResult: (r) => seen.results.push(r),
    onError: (e) => seen.errors.push(e),
  }
  const execution = await sbx.runCode(
    'import sys\n' +
      "print('hello')\n" +
      "print('oops', file=sys.stderr)\n" +
      'from IPython.display import display, HTML\n' +
      "display(HTML('<b>x</b>'))\n" +
      '6*7',
    opts
  )
  assert.deepEqual(seen.stdout.map((m) => m.line), ['hello\n'])
  assert.equal(seen.stdout[0].error, false)
  assert.deepEqual(seen.stderr.map((m) => m.line), ['oops\n'])
  assert.equal(seen.stderr[0].error, true)
  assert.equal(seen.results.length, 2)
  assert.equal(seen.results[0].html, '<b>x</b>')
  assert.equal(seen.results[0].isMainResult, false)
  assert.equal(seen.results[1].text, '42')
  assert.equal(seen.results[1].isMainResult, true)
  assert.equal(seen.errors.length, 0)
  assert.deepEqual(execution.logs, { stdout: ['hello\n'], stderr: ['oops\n'] })
  assert.equal(execution.text, '42')

  const failed = await sbx.runCode('xyz_undefined', opts)
  assert.equal(seen.errors.length, 1)
  assert.equal(seen.errors[0].name, 'NameError')
  assert.equal(failed.error.name, 'NameError')
})

test('execution error', T, async () => {
  const execution = await sbx.runCode("print('before')\n1/0")
  assert.ok(execution.error, 'error expected')
  assert.equal(execution.error.name, 'ZeroDivisionError')
  assert.equal(execution.error.value, 'division by zero')
  assert.equal(typeof execution.error.traceback, 'string')
  assert.match(execution.error.traceback, /ZeroDivisionError/)
  assert.deepEqual(execution.logs.stdout, ['before\n'])
  assert.equal(execution.results.length, 0)
  // The context is still usable right after an error.
  assert.equal((await sbx.runCode('1+1')).text, '2')
})

test('state and execution count persist', T, async () => {
  const a = await sbx.runCode('sdk_x = 5')
  const b = await sbx.runCode('sdk_x * 2')
  assert.equal(b.text, '10')
  assert.equal(b.executionCount, a.executionCount + 1)
})

test('non-ASCII output survives chunking', T, async () => {
  const small = await sbx.runCode("print('h\u00e9llo \u65e5\u672c \u{1F600}')")
  assert.deepEqual(small.logs.stdout, ['h\u00e9llo \u65e5\u672c \u{1F600}\n'])
  assert.equal((await sbx.runCode("'\u65e5\u672c'")).text, '\u65e5\u672c')
  // Large enough to span many network chunks.
  const big = await sbx.runCode("print('\u65e5\u{1F600}' * 50000)")
  assert.equal(big.logs.stdout.join(''), '\u65e5\u{1F600}'.repeat(50000) + '\n')
})

test('language python uses the default context', T, async () => {
  await sbx.runCode('sdk_default_marker = 11')
  const execution = await sbx.runCode('sdk_default_marker + 1', { language: 'python' })
  assert.equal(execution.text, '12')
  await assert.rejects(
    sbx.runCode('1', { language: 'python', context: { id: 'x', language: 'python', cwd: '/' } }),
    /context or language/
  )
})

test('list contexts includes the default python context', CTX, async () => {
  const contexts = await sbx.listCodeContexts()
  assert.ok(Array.isArray(contexts))
  assert.ok(
    contexts.some((c) => c.language === 'python' && c.cwd === CWD),
    `no default python context in ${JSON.stringify(contexts)}`
  )
})

test('context: create with a cwd, run, state stays inside it', T, async () => {
  const dir = scratchDir('ctx-dir')
  const ctx = await newContext({ cwd: dir })
  assert.equal(typeof ctx.id, 'string')
  assert.equal(ctx.language, 'python')
  assert.equal(ctx.cwd, dir)

  const cwd = await sbx.runCode('import os; print(os.getcwd())', { context: ctx })
  assert.deepEqual(cwd.logs.stdout, [dir + '\n'])

  await sbx.runCode('ctx_var = 1', { context: ctx })
  assert.equal((await sbx.runCode('ctx_var', { context: ctx })).text, '1')
  // Not visible in the default context.
  assert.equal((await sbx.runCode('ctx_var')).error?.name, 'NameError')
})

test('unknown context id is NotFoundError', T, async () => {
  const ghost = { id: 'no-such-context', language: 'python', cwd: CWD }
  // runCode leaves its request timer armed when the answer is an error; a
  // short requestTimeoutMs keeps that timer from holding the process open.
  await assert.rejects(sbx.runCode('1', { context: ghost, requestTimeoutMs: 5_000 }), (err) => {
    assert.ok(err instanceof NotFoundError, `NotFoundError expected, got ${err}`)
    assert.match(err.message, /Context no-such-context not found/)
    return true
  })
})

test('context lifecycle: list, restart, remove', CTX, async () => {
  const dir = scratchDir('ctx-life')
  const ctx = await newContext({ cwd: dir })
  const listed = await sbx.listCodeContexts()
  assert.deepEqual(listed.find((c) => c.id === ctx.id), ctx)

  await sbx.runCode('ctx_var = 1', { context: ctx })
  await sbx.restartCodeContext(ctx)
  const afterRestart = await sbx.runCode('ctx_var', { context: ctx })
  assert.equal(afterRestart.error?.name, 'NameError')
  assert.equal(afterRestart.error?.value, "name 'ctx_var' is not defined")
  const cwdAfter = await sbx.runCode('import os; print(os.getcwd())', { context: ctx })
  assert.deepEqual(cwdAfter.logs.stdout, [dir + '\n'])
  await sbx.restartCodeContext(ctx.id)

  await sbx.removeCodeContext(ctx.id)
  const ids = (await sbx.listCodeContexts()).map((c) => c.id)
  assert.ok(!ids.includes(ctx.id))
  await assert.rejects(sbx.runCode('1', { context: ctx, requestTimeoutMs: 5_000 }), (err) => {
    assert.ok(err instanceof NotFoundError, `NotFoundError expected, got ${err}`)
    assert.match(err.message, new RegExp(`Context ${ctx.id} not found`))
    return true
  })
  await assert.rejects(sbx.restartCodeContext(ctx), NotFoundError)
  await assert.rejects(sbx.removeCodeContext(ctx), NotFoundError)
})

test('create context without options', T, async () => {
  const ctx = await newContext()
  assert.equal(ctx.language, 'python')
  assert.equal(ctx.cwd, CWD)
  assert.equal((await sbx.runCode('6*7', { context: ctx })).text, '42')
  if (unless('contextManagement')) return
  const contexts = await sbx.listCodeContexts()
  assert.deepEqual(contexts[contexts.length - 1], ctx)
})

test('envs per execution', T, async () => {
  const value = 'it\'s "q" \\ $(x)\nline2 \u00e9\u{1F600}'
  const execution = await sbx.runCode(
    'import json, os, subprocess\n' +
      "print(json.dumps(os.environ['SDK_FOO']))\n" +
      "print(json.dumps(subprocess.check_output(['sh', '-c', 'printf %s \"$SDK_FOO\"']).decode()))",
    { envs: { SDK_FOO: value } }
  )
  assert.equal(execution.error, undefined)
  const lines = execution.logs.stdout.join('').trimEnd().split('\n')
  assert.deepEqual(lines.map((l) => JSON.parse(l)), [value, value])
  const unset = await sbx.runCode("import os; os.getenv('SDK_FOO', 'default')")
  assert.equal(unset.text, 'default')
})

test('envs in a created context', T, async () => {
  const ctx = await newContext()
  const r = await sbx.runCode("import os; os.getenv('SDK_BAR')", {
    context: ctx,
    envs: { SDK_BAR: 'baz' },
  })
  assert.equal(r.text, 'baz')
  const gone = await sbx.runCode("import os; os.getenv('SDK_BAR', 'none')", { context: ctx })
  assert.equal(gone.text, 'none')
})

test('execution timeout aborts the request and frees the context', T, async () => {
  await assert.rejects(
    sbx.runCode('import time; time.sleep(300)', { timeoutMs: 3_000 }),
    (err) => {
      assert.ok(err instanceof TimeoutError, `TimeoutError expected, got ${err}`)
      return true
    }
  )
  // No wait: the daemon must free the context within a few seconds.
  const execution = await sbx.runCode('1 + 1', { timeoutMs: 15_000 })
  assert.equal(execution.text, '2')
})

test('a queued runCode gets its answer head at once (requestTimeoutMs)', T, async () => {
  // The SDKs time the request until the answer head with requestTimeoutMs
  // (30 s by default in 1.x, 60 s in 2.x) and only the stream after it with
  // timeoutMs. A run waiting for its busy context must get the head at
  // once: a 2 s requestTimeoutMs outlives the wait only if it does.
  const ctx = await newContext()
  let started
  const running = new Promise((resolve) => (started = resolve))
  const busy = sbx.runCode("import time\nprint('started', flush=True)\ntime.sleep(4)\n1", {
    context: ctx,
    onStdout: started,
  })
  await running
  const queued = sbx.runCode('2', { context: ctx, requestTimeoutMs: 2_000, timeoutMs: 30_000 })
  assert.equal((await queued).text, '2')
  assert.equal((await busy).text, '1')
})

test('?source= query string (E2B_USER_AGENT_SOURCE) is accepted', T, async () => {
  process.env.E2B_USER_AGENT_SOURCE = 'ci'
  let tagged
  try {
    tagged = await Sandbox.create()
  } finally {
    delete process.env.E2B_USER_AGENT_SOURCE
  }
  assert.equal((await tagged.runCode('2+3')).text, '5')
  const ctx = await tagged.createCodeContext()
  removeLater(ctx)
  assert.equal((await tagged.runCode('3+4', { context: ctx })).text, '7')
  if (unless('contextManagement')) return
  assert.ok((await tagged.listCodeContexts()).some((c) => c.id === ctx.id))
  await tagged.restartCodeContext(ctx)
  await tagged.removeCodeContext(ctx)
})
