// The official E2B SDK (@e2b/code-interpreter, unmodified, debug mode) with
// every language e2b-ci serves besides Python: runCode with language
// 'js' | 'ts' | 'r' | 'bash' | 'java', envs, code contexts with a cwd, and
// a timeout that interrupts the cell. Run through run.sh (see sdk.test.mjs).
//
// A language whose kernelspec is not installed is skipped with the reason;
// an installed one that does not work fails.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { TimeoutError } from './sdk.mjs'

import { CWD, newContext, noError, sbx, scratchDir, useSandbox } from './sandbox.mjs'

const T = { timeout: 90_000 }
const PROJECT_KERNELS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'kernels')

// Where the daemon looks for kernelspecs (README.md): run.sh leaves
// --kernel-path at its default, our kernels/, then the Jupyter paths.
function kernelDirs() {
  const dirs = [PROJECT_KERNELS]
  for (const p of (process.env.JUPYTER_PATH || '').split(':').filter(Boolean)) {
    dirs.push(join(p, 'kernels'))
  }
  dirs.push(
    join(homedir(), '.local/share/jupyter/kernels'),
    '/usr/local/share/jupyter/kernels',
    '/usr/share/jupyter/kernels'
  )
  return dirs
}

// A skip reason when no kernelspec named spec (or for language) exists.
function missing(spec, language) {
  for (const d of kernelDirs()) {
    if (!existsSync(d)) continue
    for (const name of readdirSync(d)) {
      const kj = join(d, name, 'kernel.json')
      if (!existsSync(kj)) continue
      let meta = {}
      try {
        meta = JSON.parse(readFileSync(kj, 'utf8'))
      } catch {
        continue
      }
      if (name.toLowerCase() === spec || meta.language === language) return false
    }
  }
  return `no kernelspec for ${language} (${spec}) in ${kernelDirs().join(', ')}`
}

const SKIP = {
  js: missing('javascript', 'javascript'),
  ts: missing('typescript', 'typescript'),
  r: missing('ir', 'r'),
  bash: missing('bash', 'bash'),
  java: missing('java', 'java'),
}

function t(lang, name) {
  return [`${lang}: ${name}`, { ...T, skip: SKIP[lang] }]
}

useSandbox()

// ------------------------------------------------------------ JavaScript

test(...t('js', 'stdout, results, top-level await, imports'), async () => {
  const hello = noError(await sbx.runCode('console.log("Hello World!")', { language: 'js' }))
  assert.deepEqual(hello.logs, { stdout: ['Hello World!\n'], stderr: [] })
  assert.equal(hello.results.length, 0)

  const awaited = noError(
    await sbx.runCode("\n    await Promise.resolve('Hello World!')\n    ", { language: 'js' })
  )
  assert.equal(awaited.text, 'Hello World!')
  assert.equal(awaited.results[0].isMainResult, true)

  const esm = noError(
    await sbx.runCode("\n    import { readFileSync } from 'fs'\n    console.log(typeof readFileSync)\n    ", {
      language: 'js',
    })
  )
  assert.deepEqual(esm.logs.stdout, ['function\n'])

  const req = noError(await sbx.runCode("require('path').join('a', 'b')", { language: 'js' }))
  assert.equal(req.text, 'a/b')
  const obj = noError(await sbx.runCode("({ a: 1, b: [1, 2], s: 'x' })", { language: 'js' }))
  assert.equal(obj.text, "{ a: 1, b: [ 1, 2 ], s: 'x' }")
  assert.equal(noError(await sbx.runCode('process.cwd()', { language: 'js' })).text, CWD)
})

test(...t('js', 'state persists and errors are reported'), async () => {
  await sbx.runCode(
    'let sdkLet = 1\nconst sdkConst = 2\nfunction sdkFn(x) { return x * 10 }\n' +
      'class SdkClass { get v() { return 100 } }',
    { language: 'js' }
  )
  const sum = noError(
    await sbx.runCode('sdkLet + sdkConst + sdkFn(4) + new SdkClass().v', { language: 'javascript' })
  )
  assert.equal(sum.text, '143')

  const seen = []
  const failed = await sbx.runCode("console.log('before')\nthrow new RangeError('sdk range')", {
    language: 'js',
    onError: (e) => seen.push(e),
  })
  assert.equal(failed.error?.name, 'RangeError')
  assert.equal(failed.error?.value, 'sdk range')
  assert.match(failed.error?.traceback, /RangeError: sdk range/)
  assert.deepEqual(failed.logs.stdout, ['before\n'])
  assert.equal(seen.length, 1)
  assert.equal(noError(await sbx.runCode('sdkLet', { language: 'js' })).text, '1')
})

test(...t('js', 'envs per execution'), async () => {
  const r = noError(await sbx.runCode('process.env.SDK_JS_FOO', { language: 'js', envs: { SDK_JS_FOO: 'bar' } }))
  assert.equal(r.results[0]?.text.trim(), 'bar')
  const empty = noError(await sbx.runCode("process.env.SDK_JS_FOO || 'default'", { language: 'js' }))
  assert.equal(empty.results[0]?.text.trim(), 'default')
})

test(...t('js', 'context with a cwd'), async () => {
  const dir = scratchDir('js ctx')
  const ctx = await newContext({ language: 'js', cwd: dir })
  assert.equal(ctx.language, 'javascript')
  assert.equal(ctx.cwd, dir)
  assert.equal(noError(await sbx.runCode('process.cwd()', { context: ctx })).text, dir)
  await sbx.runCode('let sdkCtxOnly = 5', { context: ctx })
  assert.equal(noError(await sbx.runCode('sdkCtxOnly * 2', { context: ctx })).text, '10')
  const other = await sbx.runCode('typeof sdkCtxOnly', { language: 'js' })
  assert.equal(other.text, 'undefined')
})

test(...t('js', 'timeoutMs interrupts a busy loop, the next run works'), async () => {
  await sbx.runCode("let sdkBeforeLoop = 'kept'", { language: 'js' })
  await assert.rejects(sbx.runCode('while (true) {}', { language: 'js', timeoutMs: 3_000 }), (err) => {
    assert.ok(err instanceof TimeoutError, `TimeoutError expected, got ${err}`)
    return true
  })
  const next = noError(await sbx.runCode('sdkBeforeLoop + (1 + 1)', { language: 'js', timeoutMs: 15_000 }))
  assert.equal(next.text, 'kept2')
})

// ------------------------------------------------------------ TypeScript

test(...t('ts', 'types are accepted, own default context'), async () => {
  const hello = noError(
    await sbx.runCode('const message: string = "Hello World!"; console.log(message)', { language: 'ts' })
  )
  assert.deepEqual(hello.logs.stdout, ['Hello World!\n'])
  const typed = noError(
    await sbx.runCode(
      'interface SdkP { x: number }\nenum SdkE { A = 2 }\nfunction sdkId<T>(v: T): T { return v }\n' +
        'const sdkP: SdkP = { x: sdkId<number>(40) }\nsdkP.x + SdkE.A',
      { language: 'ts' }
    )
  )
  assert.equal(typed.text, '42')
  const inJs = await sbx.runCode('typeof message', { language: 'js' })
  assert.equal(inJs.text, 'undefined')
  const envs = noError(await sbx.runCode('process.env.SDK_TS_FOO', { language: 'ts', envs: { SDK_TS_FOO: 'ts-bar' } }))
  assert.equal(envs.text, 'ts-bar')
  const dir = scratchDir('ts ctx')
  const ctx = await newContext({ language: 'ts', cwd: dir })
  assert.equal(ctx.language, 'typescript')
  assert.equal(noError(await sbx.runCode('const sdkCwd: string = process.cwd(); sdkCwd', { context: ctx })).text, dir)
})

// --------------------------------------------------------------------- R

test(...t('r', 'results, stdout, errors, envs, context'), async () => {
  const two = noError(await sbx.runCode('1+1', { language: 'r' }))
  assert.equal(two.results.length, 1)
  assert.equal(two.results[0].text, '[1] 2')
  const printed = noError(await sbx.runCode('sdk_r <- 20; cat("hello\\n"); sdk_r + 1', { language: 'r' }))
  assert.deepEqual(printed.logs.stdout, ['hello\n'])
  assert.equal(printed.results[0]?.text, '[1] 21')
  assert.equal(noError(await sbx.runCode('sdk_r', { language: 'r' })).results[0]?.text, '[1] 20')
  const failed = await sbx.runCode('stop("sdk r boom")', { language: 'r' })
  assert.ok(failed.error, 'error expected')
  assert.match(failed.error.value, /sdk r boom/)

  const env = noError(await sbx.runCode('Sys.getenv("SDK_R_FOO")', { language: 'r', envs: { SDK_R_FOO: 'bar' } }))
  assert.equal(env.results[0]?.text.trim(), '[1] "bar"')
  const unset = noError(await sbx.runCode('Sys.getenv("SDK_R_FOO", unset = "default")', { language: 'r' }))
  assert.equal(unset.results[0]?.text.trim(), '[1] "default"')

  const dir = scratchDir('r ctx')
  const ctx = await newContext({ language: 'r', cwd: dir })
  assert.equal(ctx.language, 'r')
  const cwd = noError(await sbx.runCode('getwd()', { context: ctx }))
  assert.equal(cwd.results[0]?.text.trim(), `[1] "${dir}"`)
})

// ------------------------------------------------------------------ Bash

test(...t('bash', 'stdout, stderr, state, errors, envs'), async () => {
  const out = noError(await sbx.runCode('echo hello; echo oops >&2', { language: 'bash' }))
  assert.deepEqual(out.logs, { stdout: ['hello\n'], stderr: ['oops\n'] })
  assert.deepEqual(noError(await sbx.runCode('pwd', { language: 'bash' })).logs.stdout, [CWD + '\n'])
  await sbx.runCode('export SDK_BASH_X=exported; sdk_bash_y=plain', { language: 'bash' })
  const kept = noError(await sbx.runCode('echo "$SDK_BASH_X $sdk_bash_y"', { language: 'bash' }))
  assert.deepEqual(kept.logs.stdout, ['exported plain\n'])
  const failed = await sbx.runCode('echo partial; false', { language: 'bash' })
  assert.ok(failed.error, 'non-zero exit status: error expected')
  assert.deepEqual(failed.logs.stdout, ['partial\n'])

  const env = noError(await sbx.runCode('echo $SDK_BASH_FOO', { language: 'bash', envs: { SDK_BASH_FOO: 'bar' } }))
  assert.equal(env.logs.stdout[0], 'bar\n')
  const empty = noError(await sbx.runCode('echo ${SDK_BASH_FOO:-default}', { language: 'bash' }))
  assert.equal(empty.logs.stdout[0], 'default\n')
})

test(...t('bash', 'context with a cwd keeps cd'), async () => {
  const dir = scratchDir('bash ctx')
  mkdirSync(join(dir, 'sub'), { recursive: true })
  const ctx = await newContext({ language: 'bash', cwd: dir })
  assert.equal(ctx.language, 'bash')
  assert.deepEqual(noError(await sbx.runCode('pwd', { context: ctx })).logs.stdout, [dir + '\n'])
  await sbx.runCode('cd sub', { context: ctx })
  assert.deepEqual(noError(await sbx.runCode('pwd', { context: ctx })).logs.stdout, [join(dir, 'sub') + '\n'])
})

test(...t('bash', 'timeoutMs interrupts sleep, the next run works'), async () => {
  await sbx.runCode('sdk_bash_kept=yes', { language: 'bash' })
  await assert.rejects(sbx.runCode('sleep 100', { language: 'bash', timeoutMs: 3_000 }), (err) => {
    assert.ok(err instanceof TimeoutError, `TimeoutError expected, got ${err}`)
    return true
  })
  const next = noError(await sbx.runCode('echo "ok $sdk_bash_kept"', { language: 'bash', timeoutMs: 15_000 }))
  assert.deepEqual(next.logs.stdout, ['ok yes\n'])
})

// ------------------------------------------------------------------ Java

test(...t('java', 'expressions, statements, declarations, errors'), async () => {
  assert.equal(noError(await sbx.runCode('System.getProperty("user.dir")', { language: 'java' })).text, CWD)
  // One stream message per flush of System.out: println is the text and
  // then the line separator, as E2B's own SDK test expects
  // (logs.stdout[0] == "Hello, World!").
  const printed = noError(await sbx.runCode('System.out.println("Hello, World!")', { language: 'java' }))
  assert.equal(printed.logs.stdout[0], 'Hello, World!')
  assert.deepEqual(printed.logs.stdout, ['Hello, World!', '\n'])
  await sbx.runCode(
    'import java.util.*;\nList<String> sdkXs = new ArrayList<>(List.of("b", "a"));\n' +
      'int sdkTwice(int v) { return 2 * v; }\nclass SdkBox { int v = 21; }',
    { language: 'java' }
  )
  const used = noError(
    await sbx.runCode('Collections.sort(sdkXs);\nsdkXs.get(0) + sdkTwice(new SdkBox().v)', { language: 'java' })
  )
  assert.equal(used.text, 'a42')
  const failed = await sbx.runCode('throw new IllegalStateException("sdk java boom");', { language: 'java' })
  assert.equal(failed.error?.name, 'IllegalStateException')
  assert.equal(failed.error?.value, 'sdk java boom')
  assert.match(failed.error?.traceback, /IllegalStateException/)
})

test(...t('java', 'envs per execution'), async () => {
  const r = await sbx.runCode('System.getenv("SDK_JAVA_FOO")', { language: 'java', envs: { SDK_JAVA_FOO: 'bar' } })
  assert.equal(noError(r).results[0]?.text.trim(), 'bar')
  const empty = noError(
    await sbx.runCode('System.getenv().getOrDefault("SDK_JAVA_FOO", "default")', { language: 'java' })
  )
  assert.equal(empty.results[0]?.text.trim(), 'default')
})

test(...t('java', 'a snippet over the class-file limits fails alone'), async () => {
  const ctx = await newContext({ language: 'java' })
  // An env value far over javac's 64 KiB constant limit, then a literal.
  await sbx.runCode('1', { context: ctx, envs: { SDK_JAVA_BIG: 'x'.repeat(49_200) } })
  const big = await sbx.runCode(`String sdkBig = "${'y'.repeat(70_000)}";`, { context: ctx })
  assert.equal(big.error?.name, 'CompilationError')
  noError(await sbx.runCode('int sdkQ = 5;', { context: ctx }))
  assert.equal(noError(await sbx.runCode('sdkQ', { context: ctx })).text, '5')
  const printed = noError(await sbx.runCode('System.out.println("still printing")', { context: ctx }))
  assert.equal(printed.logs.stdout.join(''), 'still printing\n')
})

test(...t('java', 'context with a cwd'), async () => {
  const dir = scratchDir('java ctx')
  const ctx = await newContext({ language: 'java', cwd: dir })
  assert.equal(ctx.language, 'java')
  assert.equal(ctx.cwd, dir)
  assert.equal(noError(await sbx.runCode('System.getProperty("user.dir")', { context: ctx })).text, dir)
})
