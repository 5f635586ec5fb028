/*
 * runner.mjs: the Node.js runner of e2b-kernel (kernels/RUNNER-PROTOCOL.md,
 * mode "json") for javascript and typescript.
 *
 *   node runner.mjs --language javascript|typescript
 *
 * stdin carries requests (one JSON object per line), fd 1 and 2 are the
 * user's stdout and stderr (made blocking, otherwise left alone: output
 * streams as it is written), fd 3 carries events. Requests run one at a time, in this
 * process's main context, so all cells share one global scope: transform.mjs
 * rewrites each cell into an async function whose top-level declarations
 * assign globals and whose last expression is returned.
 *
 * Interrupts (SIGINT, sent by the host to our process group, only after
 * the cell's "started" event, which ready's announces_start asks for):
 *  - a cell waiting (await, timers, I/O): the SIGINT listener ends the cell
 *    with KeyboardInterrupt; whatever it awaited is abandoned;
 *  - a cell busy in its own code (while (true) {}, before or after an
 *    await, or in a callback it scheduled): the main thread cannot run a
 *    listener, so a worker thread listens for SIGINT too and raises a flag
 *    in shared memory; every loop and function body of cell code checks
 *    it and throws KeyboardInterrupt. Busy code that is not cell code (a
 *    regular expression, a library's loop) is not interruptible.
 *  - a leftover of an earlier cell busy between cells (a timer callback in
 *    `while (true) {}`), which keeps the next request from being read: the
 *    flag is raised for a second and stops it; the next request then runs
 *    (or ends with KeyboardInterrupt, when the SIGINT listener sees it).
 * vm's breakOnSigint is deliberately not used: it restores SIGINT to "exit"
 * when another thread holds a libuv signal handle.
 *
 * Invariants: "ready" is the first event; every execute request gets
 * "started" first and exactly one "done", last, written after fd 1 and 2 are flushed; an
 * exception or rejection from a cell's leftovers after its "done" goes to
 * stderr and never kills the runner.
 */
import process from 'node:process';
import fs from 'node:fs';
import path from 'node:path';
import util from 'node:util';
import vm from 'node:vm';
import { createRequire } from 'node:module';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

let wrap, CellSyntaxError; /* from transform.mjs, loaded at start */

/* Captured before user code can replace the globals. */
const stringify = JSON.stringify;
const parseJSON = JSON.parse;
const G = globalThis;
const HERE = path.dirname(fileURLToPath(import.meta.url));
const HERE_URL = pathToFileURL(HERE).href;
const ownRequire = createRequire(import.meta.url);

const LANGS = {
	javascript: { name: 'javascript', mimetype: 'application/javascript',
		file_extension: '.js' },
	typescript: { name: 'typescript', mimetype: 'text/typescript',
		file_extension: '.ts' },
};

function argValue(name, dflt) {
	const i = process.argv.indexOf(name);
	return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const language = argValue('--language', 'javascript');
if (!LANGS[language]) {
	process.stderr.write(`runner: unknown --language ${language}\n`);
	process.exit(2);
}
const TS = language === 'typescript';

/* ---- events (fd 3) ---- */

/* fd 3 need not be made close-on-exec: Node marks its inherited low fds
 * so at start (uv_disable_stdio_inheritance), and user subprocesses do
 * not inherit the event pipe. */
const eventFd = 3;
try {
	fs.fstatSync(eventFd);
} catch {
	process.stderr.write('runner: fd 3 (the event pipe) is not open\n');
	process.exit(2);
}

const pause = new Int32Array(new SharedArrayBuffer(4));

function emit(ev) {
	const buf = Buffer.from(stringify(ev) + '\n', 'utf8');
	let off = 0;
	while (off < buf.length) {
		try {
			off += fs.writeSync(eventFd, buf, off);
		} catch (e) {
			if (e.code === 'EAGAIN') {
				Atomics.wait(pause, 0, 0, 2);
				continue;
			}
			if (e.code === 'EPIPE' || e.code === 'EBADF')
				process.exit(0); /* the host is gone */
			process.stderr.write(`runner: writing an event: ${e.message}\n`);
			process.exit(1);
		}
	}
}

/* Resolves when everything written so far to fd 1 and 2 is in the pipes:
 * process.stdout on a pipe writes asynchronously. */
function flushStream(s) {
	return new Promise((resolve) => {
		if (!s || s.destroyed || !s.writableLength)
			return resolve();
		s.write('', () => resolve());
	});
}

function flushStdio() {
	return Promise.all([flushStream(process.stdout),
		flushStream(process.stderr)]);
}

/* Blocking writes on the stdio pipes: console.log returns once its bytes
 * are in the pipe, so output keeps its place before a display event or
 * "done" even when the host reads slowly (and subprocesses sharing fd 1/2
 * find them blocking, as they expect). flushStdio() stays as a safety net
 * for streams that cannot block. */
for (const s of [process.stdout, process.stderr]) {
	if (s._handle && typeof s._handle.setBlocking === 'function')
		s._handle.setBlocking(true);
	s.on('error', () => { /* EPIPE: the host is gone; stdin EOF exits */ });
}

/* ---- interrupts ---- */

class KeyboardInterrupt extends Error {
	constructor() {
		super('Interrupted');
		this.name = 'KeyboardInterrupt';
	}
}

/* [FLAG] is raised by the SIGINT worker and checked by cell code; [RUNNING]
 * tells the worker whether a cell runs (between cells it lowers the flag
 * again after a second). */
const FLAG = 0;
const RUNNING = 1;
const shared = new Int32Array(new SharedArrayBuffer(8));

/* Node has no public way for a thread other than the main one to receive a
 * signal (process.on('SIGINT') in a worker never fires), so the worker
 * takes the signal_wrap binding, the handle process.on('SIGINT') is built
 * on: internal, and its process.binding() access is deprecated (DEP0111,
 * documentation-only; a warning under --pending-deprecation, which is ours
 * and is dropped, no other). This is pinned rather than hidden: the worker
 * checks that the binding has the shape it uses and that start() returned
 * 0; otherwise the runner says on stderr that busy cells cannot be
 * interrupted, and so do the interrupt tests of
 * tests/kernels/test_node_runner.py, on Node 18 and the machine's node
 * (test_interrupt_worker_is_armed also with --pending-deprecation and
 * --throw-deprecation). */
const WORKER_SRC = `
const { workerData, parentPort } = require('node:worker_threads');
const emitWarning = process.emitWarning;
process.emitWarning = function (w, ...rest) {
	const code = (w && w.code) || (rest[0] && rest[0].code) || rest[1];
	if (code === 'DEP0111')
		return undefined;
	return Reflect.apply(emitWarning, this, [w, ...rest]);
};
const where = \`process.binding('signal_wrap') on Node \${process.version}\`;
const { Signal } = process.binding('signal_wrap');
if (typeof Signal !== 'function' || typeof Signal.prototype.start !== 'function')
	throw new Error(\`\${where}: no Signal handle with start()\`);
const sig = new Signal();
let lower = null;
sig.onsignal = () => {
	Atomics.store(workerData, ${FLAG}, 1);
	if (Atomics.load(workerData, ${RUNNING}))
		return;
	/* Between cells the flag stops a busy leftover of an earlier cell (a
	 * timer callback in a loop) that keeps the next request from being
	 * read; a cell resets it when it starts. Otherwise it is lowered
	 * after a second, so later callbacks of cell code run again. */
	clearTimeout(lower);
	lower = setTimeout(() => {
		if (!Atomics.load(workerData, ${RUNNING}))
			Atomics.store(workerData, ${FLAG}, 0);
	}, 1000);
};
const rc = sig.start(require('node:os').constants.signals.SIGINT);
if (rc !== 0)
	throw new Error(\`\${where}: start(SIGINT) returned \${rc}\`);
parentPort.postMessage('armed');
`;

/* Resolves once the worker listens for SIGINT (or has failed): before
 * "ready", since the host may interrupt its first request at once. */
function startInterruptWorker() {
	const broken = (why) => process.stderr.write(`runner: interrupt ` +
		`worker failed (${why}); busy cells cannot be interrupted\n`);
	return new Promise((resolve) => {
		let w;
		const done = () => {
			if (w)
				w.unref(); /* the worker never keeps the runner alive */
			resolve();
		};
		try {
			w = new Worker(WORKER_SRC, { eval: true, workerData: shared,
				stdout: false, stderr: false });
		} catch (e) {
			broken(e.message);
			return done();
		}
		w.on('error', (e) => {
			broken(e.message);
			done();
		});
		w.once('message', done);
		w.once('exit', done);
	});
}

let current = null; /* the running cell: {id, interrupt} */
let armed = null; /* resolves when the interrupt worker listens (or failed) */

/* The host sends SIGINT only for a cell that has started ("started" event,
 * see runCell), so one that arrives with no cell running is late, for a
 * cell that has just ended: ignored. */
process.on('SIGINT', () => {
	if (!current)
		return;
	Atomics.store(shared, FLAG, 1);
	current.interrupt();
});

/* ---- leftovers of cells ---- */

function reportUncaught(what, e) {
	if (e instanceof KeyboardInterrupt)
		return;
	let text;
	try {
		text = util.inspect(e);
	} catch {
		text = String(e);
	}
	try {
		process.stderr.write(`${what}: ${text}\n`);
	} catch {
		/* nowhere to report */
	}
}

process.on('uncaughtException', (e) => reportUncaught('Uncaught', e));
process.on('unhandledRejection', (e) =>
	reportUncaught('Unhandled promise rejection', e));

/* Warnings that are the runner's, not the user's: the default ESM loader
 * warns once that the vm option the runner uses is experimental, and Node
 * before 20.10 calls JSON modules experimental (stable since, silent on
 * later Node), so a cell behaves the same on every Node we support. */
const OUR_WARNINGS = ['USE_MAIN_CONTEXT_DEFAULT_LOADER',
	'Importing JSON modules is an experimental feature'];
const emitWarning = process.emitWarning;
process.emitWarning = function (w, ...rest) {
	const text = typeof w === 'string' ? w : w && w.message;
	if (typeof text === 'string' && OUR_WARNINGS.some((o) => text.includes(o)))
		return undefined;
	return Reflect.apply(emitWarning, this, [w, ...rest]);
};

/* ---- module loading relative to the current directory ---- */

/* Node >= 20.12 (and 21.7) lets a vm.Script's import() use the default ESM
 * loader with the script's filename as the referrer: Node's own resolver,
 * from the current directory. Older Node (Debian 12 ships 18.20.4) has no
 * such option, and a vm.Script's import() fails there unless a callback
 * supplies the module; there the runner resolves the specifier itself with
 * import-meta-resolve (a port of Node's ESM resolver: exports, imports, the
 * "node" and "import" conditions, node_modules up from the current
 * directory, builtins) and imports the resolved URL from here. Either way
 * the module lands in the one ESM cache of the main context. */
const DEFAULT_LOADER = vm.constants ?
	vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER : undefined;
const importers = new Map();
let moduleResolve = null;

function cellFile(cwd) {
	return path.join(cwd, '[e2b-cell]');
}

async function importResolved(spec, opts) {
	if (!moduleResolve)
		({ moduleResolve } = await import('import-meta-resolve'));
	const s = String(spec);
	const url = moduleResolve(s, pathToFileURL(cellFile(process.cwd())));
	return opts === undefined ? import(url.href) : import(url.href, opts);
}

/* import(spec, opts) as if written in a file of the current directory:
 * ESM resolution (exports, "import" conditions, node_modules) from cwd. */
function importFromCwd(spec, opts) {
	if (DEFAULT_LOADER === undefined)
		return importResolved(spec, opts);
	const cwd = process.cwd();
	let f = importers.get(cwd);
	if (!f) {
		const s = new vm.Script('(s, o) => import(s, o)', {
			filename: cellFile(cwd),
			importModuleDynamically: DEFAULT_LOADER,
		});
		f = s.runInThisContext();
		importers.set(cwd, f);
	}
	return f(spec, opts);
}

let lastRequire = null;
let lastRequireCwd = null;

/* A global require() resolving from the current directory, unless the user
 * put their own require there. */
function refreshRequire() {
	if (G.require !== undefined && G.require !== lastRequire)
		return;
	const cwd = process.cwd();
	if (cwd !== lastRequireCwd) {
		lastRequire = createRequire(path.join(cwd, '[e2b-cell]'));
		lastRequireCwd = cwd;
	}
	G.require = lastRequire;
}

/* ---- display ---- */

const DISPLAY = Symbol.for('Jupyter.display');
/* How a value is shown. util.inspect's defaults cut strings at 10,000
 * characters, arrays (and Maps, Sets, typed arrays) at 100 items and
 * nesting at depth 2, which loses data a user computes on. Python's repr
 * shows whole strings, lists and dicts, so this shows whole strings and
 * arrays, and plain data (arrays, plain objects, Maps and Sets of them,
 * JSON.parse's output) to any depth; other objects (modules, class
 * instances, functions) keep the REPL's depth 2, since expanding an object
 * graph fully can take seconds and hundreds of MB (require('module')
 * after a few requires: 144 MB). What bounds a result is the daemon's
 * output backlog, as for every other language. A text too long for a
 * JavaScript string falls back to inspect's defaults, whose cuts say
 * "... more characters". */
const INSPECT = { showProxy: true, maxStringLength: Infinity,
	maxArrayLength: Infinity };
const INSPECT_DATA = { ...INSPECT, depth: Infinity };
const PLAIN_BUDGET = 1e7; /* values visited to call a value plain data */

function plainProto(x) {
	const p = Object.getPrototypeOf(x);
	if (Array.isArray(x))
		return p === Array.prototype;
	if (util.types.isMap(x))
		return p === Map.prototype;
	if (util.types.isSet(x))
		return p === Set.prototype;
	return p === Object.prototype || p === null;
}

/* Whether value is plain data: primitives, and arrays, plain objects, Maps
 * and Sets whose own properties are data properties (no getters run, but
 * an array's elements are read by index) holding plain data, no proxies,
 * found within PLAIN_BUDGET values. */
function plainData(value) {
	const todo = [value];
	let budget = PLAIN_BUDGET;
	while (todo.length) {
		const x = todo.pop();
		if (--budget < 0)
			return false;
		if (typeof x === 'function')
			return false;
		if (x === null || typeof x !== 'object')
			continue;
		if (util.types.isProxy(x) || !plainProto(x))
			return false;
		if (util.types.isMap(x) || util.types.isSet(x)) {
			if (x.size > budget)
				return false;
			for (const e of x.entries())
				todo.push(e[0], e[1]);
		}
		let keys = Reflect.ownKeys(x);
		if (keys.length > budget)
			return false;
		if (Array.isArray(x)) {
			/* Elements by index (much faster than descriptors); the keys
			 * after "length" are the array's other own properties. */
			budget -= x.length;
			for (let i = 0; i < x.length; i++) {
				const v = x[i];
				if (v !== null && (typeof v === 'object' ||
				    typeof v === 'function'))
					todo.push(v);
			}
			keys = keys.slice(keys.indexOf('length') + 1);
		}
		for (const k of keys) {
			const d = Reflect.getOwnPropertyDescriptor(x, k);
			if (!('value' in d))
				return false;
			todo.push(d.value);
		}
	}
	return true;
}

function inspectValue(value) {
	try {
		return util.inspect(value, plainData(value) ? INSPECT_DATA : INSPECT);
	} catch (e) {
		if (!(e instanceof RangeError))
			throw e;
		return util.inspect(value, { showProxy: true });
	}
}

/* The MIME bundle of a value: text/plain is util.inspect (strings quoted,
 * as the REPL shows them); an object with a [Symbol.for('Jupyter.display')]
 * method (Deno's convention) supplies its own. Returns the bundle, or a
 * promise of it when that method returns one. */
function bundle(value) {
	const finish = (own) => {
		const data = own && typeof own === 'object' ? { ...own } : {};
		if (data['text/plain'] === undefined)
			data['text/plain'] = inspectValue(value);
		return data;
	};
	if (value !== null && (typeof value === 'object' ||
	    typeof value === 'function') && typeof value[DISPLAY] === 'function') {
		const own = value[DISPLAY]();
		if (own && typeof own.then === 'function')
			return Promise.resolve(own).then(finish);
		return finish(own);
	}
	return finish(null);
}

function sendDisplay(data) {
	if (current) {
		emit({ type: 'display', id: current.id, data, metadata: {} });
	} else if (typeof data['text/plain'] === 'string') {
		process.stdout.write(data['text/plain'] + '\n');
	}
}

function base64(x) {
	if (typeof x === 'string')
		return x.replace(/^data:[^,]*;base64,/, '');
	if (x instanceof ArrayBuffer || ArrayBuffer.isView(x))
		return Buffer.from(x.buffer ?? x, x.byteOffset ?? 0,
			x.byteLength).toString('base64');
	throw new TypeError('expected a base64 string, a Buffer or bytes');
}

function makeDisplay() {
	const display = (...values) => {
		let later = null;
		for (const v of values) {
			const b = bundle(v);
			if (later || typeof b.then === 'function')
				later = (later || Promise.resolve()).then(() => b)
					.then(sendDisplay);
			else
				sendDisplay(b);
		}
		return later ?? undefined;
	};
	const text = (mime) => (s) => sendDisplay({ [mime]: String(s) });
	const bytes = (mime) => (b) => sendDisplay({ [mime]: base64(b) });
	Object.assign(display, {
		html: text('text/html'),
		markdown: text('text/markdown'),
		svg: text('image/svg+xml'),
		latex: text('text/latex'),
		javascript: text('application/javascript'),
		png: bytes('image/png'),
		jpeg: bytes('image/jpeg'),
		pdf: bytes('application/pdf'),
		json: (v) => sendDisplay({ 'application/json':
			parseJSON(stringify(v)) }),
		text: (s) => sendDisplay({ 'text/plain': String(s) }),
		bundle: (data) => sendDisplay({ ...data }),
	});
	return display;
}

/* ---- errors ---- */

function isError(e) {
	return util.types.isNativeError(e) || e instanceof Error;
}

function errorName(e) {
	let n = typeof e.name === 'string' && e.name ? e.name : 'Error';
	const c = e.constructor && e.constructor.name;
	if (n === 'Error' && typeof c === 'string' && c && c !== 'Error' &&
	    c !== 'Object')
		n = c;
	return n;
}

function internalFrame(line) {
	return /^\s+at /.test(line) && (line.includes(HERE_URL) ||
		line.includes(HERE + path.sep) || line.includes('node:internal/') ||
		line.includes('(node:vm:') || line.includes('[e2b-cell]'));
}

function syntaxErrorEvent(id, e, source, cellName) {
	const lines = source.split('\n');
	const src = lines[e.line - 1] ?? '';
	const col = Math.max(0, Math.min(e.column, src.length));
	const message = e.message.replace(/ \(\d+:\d+\)$/, '');
	return {
		type: 'error', id, ename: 'SyntaxError',
		evalue: `${message} (line ${e.line}, column ${e.column + 1})`,
		traceback: [`${cellName}:${e.line}:${e.column + 1}`, src,
			' '.repeat(col) + '^', '',
			`SyntaxError: ${message}`],
	};
}

function errorEvent(id, e, source, cellName) {
	try {
		if (e instanceof CellSyntaxError)
			return syntaxErrorEvent(id, e, source, cellName);
		if (isError(e)) {
			const ename = errorName(e);
			const evalue = typeof e.message === 'string' ? e.message :
				String(e.message ?? '');
			const stack = typeof e.stack === 'string' && e.stack ? e.stack :
				`${ename}: ${evalue}`;
			const traceback = stack.split('\n').filter((l) =>
				!internalFrame(l));
			if (e.cause !== undefined)
				traceback.push(...`[cause]: ${util.inspect(e.cause)}`
					.split('\n').filter((l) => !internalFrame(l)));
			return { type: 'error', id, ename, evalue, traceback };
		}
		const shown = inspectValue(e);
		return { type: 'error', id, ename: 'Error',
			evalue: typeof e === 'string' ? e : shown,
			traceback: [`Uncaught ${shown}`] };
	} catch (inner) {
		return { type: 'error', id, ename: 'Error',
			evalue: `(the thrown value could not be shown: ${inner})`,
			traceback: [] };
	}
}

/* ---- TypeScript ---- */

let sucrase = null;

function loadSucrase() {
	if (!sucrase)
		sucrase = ownRequire('sucrase');
	return sucrase;
}

/* sucrase treats every namespace as a type and drops it; refuse the ones
 * that hold values instead of silently losing them. */
function checkNamespaces(code) {
	const re = /^([ \t]*)(?:export[ \t]+)?(?:namespace|module)[ \t]+[\w$.]+[ \t]*\{/gm;
	let m;
	while ((m = re.exec(code))) {
		let depth = 0;
		let i = m.index + m[0].length - 1;
		for (; i < code.length; i++) {
			if (code[i] === '{')
				depth++;
			else if (code[i] === '}' && --depth === 0)
				break;
		}
		const body = code.slice(m.index + m[0].length, i);
		if (/\b(const|let|var|function|class|enum)\b/.test(body)) {
			const line = code.slice(0, m.index).split('\n').length;
			throw new CellSyntaxError('TypeScript namespaces with values are ' +
				'not supported (types are stripped with sucrase); use an ' +
				'object or a module', line, m[1].length);
		}
	}
}

function tsToJs(code) {
	checkNamespaces(code);
	try {
		return loadSucrase().transform(code, {
			transforms: ['typescript'],
			disableESTransforms: true,
			keepUnusedImports: true,
		}).code;
	} catch (e) {
		if (e && e.loc)
			throw new CellSyntaxError(String(e.message), e.loc.line,
				Math.max(0, e.loc.column - 1));
		throw e;
	}
}

/* ---- cells ---- */

let cellCount = 0;

/* Makes each name a plain writable global, so that the cell's assignments
 * stick: new names start undefined; a built-in accessor or read-only global
 * the cell redeclares (const crypto = require('crypto')) is replaced, as a
 * declaration would shadow it. */
function declare(names) {
	for (const n of names) {
		const d = Object.getOwnPropertyDescriptor(G, n);
		if (d && ('value' in d ? d.writable : false))
			continue;
		if (!d && n in G)
			continue; /* inherited: assignment makes an own property */
		if (!d || d.configurable)
			Object.defineProperty(G, n, { value: undefined, writable: true,
				enumerable: true, configurable: true });
	}
}

function stop() {
	throw new KeyboardInterrupt();
}

/* The KeyboardInterrupt reported when an interrupt made the cell fail with
 * another error e; e's traceback follows. */
function interruptedWhile(e) {
	const k = new KeyboardInterrupt();
	const inner = errorEvent(0, e, '', '');
	k.stack = ['KeyboardInterrupt: Interrupted', '',
		'The interrupt ended the cell, which raised:',
		...inner.traceback].join('\n');
	return k;
}

async function runCell(req) {
	const id = req.id;
	const code = typeof req.code === 'string' ? req.code : '';
	const cellName = `<cell ${++cellCount}>`;
	let status = 'ok';
	const cell = { id, interrupt: null, interrupted: false };
	const interrupted = new Promise((_, reject) => {
		cell.interrupt = () => {
			cell.interrupted = true;
			reject(new KeyboardInterrupt());
		};
	});
	interrupted.catch(() => {});
	current = cell;
	Atomics.store(shared, FLAG, 0);
	Atomics.store(shared, RUNNING, 1);
	/* From here on an interrupt is this cell's: the host holds back a
	 * SIGINT for a request until its "started" (the signal could otherwise
	 * come before the request is read, and the reset above would lose it). */
	emit({ type: 'started', id });
	try {
		const js = TS ? tsToJs(code) : code;
		const fn = new vm.Script(wrap(js), { filename: cellName,
			lineOffset: -1 }).runInThisContext();
		refreshRequire();
		const cwd = process.cwd();
		const helper = {
			g: G, declare, stop, import: importFromCwd,
			meta: { url: pathToFileURL(path.join(cwd, cellName)).href,
				filename: path.join(cwd, cellName), dirname: cwd },
		};
		const p = fn(helper, shared);
		p.catch(() => {});
		const value = await Promise.race([p, interrupted]);
		if (!req.silent && value !== undefined) {
			let data = bundle(value);
			if (typeof data.then === 'function')
				data = await Promise.race([data, interrupted]);
			emit({ type: 'result', id, data, metadata: {} });
		}
	} catch (e) {
		status = 'error';
		let err = e;
		if (!(e instanceof KeyboardInterrupt)) {
			/* A SIGINT also kills the cell's subprocesses (one process
			 * group): execSync then throws its own error. Let a pending
			 * SIGINT listener run first (it runs in the poll phase of the
			 * next loop iteration, after the second immediate is queued),
			 * then report the interrupt. */
			await new Promise((resolve) =>
				setImmediate(() => setImmediate(resolve)));
			if (cell.interrupted || Atomics.load(shared, FLAG))
				err = interruptedWhile(e);
		}
		emit(errorEvent(id, err, code, cellName));
	}
	current = null;
	Atomics.store(shared, RUNNING, 0);
	await flushStdio();
	Atomics.store(shared, FLAG, 0);
	emit({ type: 'done', id, status });
}

/* ---- requests (stdin) ---- */

const queue = [];
let busy = false;
let ending = false; /* stdin is closed: exit once the queue is empty */

async function pump() {
	if (busy)
		return;
	busy = true;
	/* Run cells from a microtask, not from inside stdin's 'data' event:
	 * their stack traces then hold no frames of the request reader. */
	await null;
	await armed;
	while (queue.length) {
		const req = queue.shift();
		try {
			await runCell(req);
		} catch (e) {
			/* Only emit() failing with an odd error gets here. */
			reportUncaught('runner', e);
			process.exit(1);
		}
	}
	busy = false;
	if (ending)
		shutdown();
}

function shutdown() {
	flushStdio().then(() => process.exit(0));
}

function endOfRequests() {
	ending = true;
	if (!busy)
		shutdown();
}

function onRequest(line) {
	let req;
	try {
		req = parseJSON(line);
	} catch {
		process.stderr.write('runner: malformed request ignored\n');
		return;
	}
	if (req && req.type === 'execute') {
		queue.push(req);
		pump();
	} else if (req && req.type === 'shutdown') {
		shutdown();
	} else {
		process.stderr.write('runner: unknown request ignored\n');
	}
}

function readRequests() {
	let buf = '';
	process.stdin.setEncoding('utf8');
	process.stdin.on('data', (chunk) => {
		buf += chunk;
		let i;
		while ((i = buf.indexOf('\n')) >= 0) {
			const line = buf.slice(0, i);
			buf = buf.slice(i + 1);
			if (line.trim())
				onRequest(line);
		}
	});
	process.stdin.on('end', endOfRequests);
	process.stdin.on('error', endOfRequests);
}

/* ---- start ---- */

/* The worker starts while the main thread loads acorn; the first cell
 * waits for it (pump), "ready" does not. */
armed = startInterruptWorker();
/* transform.mjs needs acorn from node_modules: say how to get it. */
try {
	({ wrap, CellSyntaxError } = await import('./transform.mjs'));
} catch (e) {
	process.stderr.write(`runner: ${e.message}\nrunner: install the ` +
		'dependencies with kernels/node/install.sh\n');
	process.exit(1);
}
G.display = makeDisplay();
refreshRequire();
emit({
	type: 'ready',
	language_info: { ...LANGS[language], version: process.versions.node },
	announces_start: true,
	banner: `Node.js ${process.version} (${language}), e2b-ci runner`,
});
readRequests();
if (TS)
	setImmediate(() => {
		try {
			tsToJs('let _: number = 0');
		} catch {
			/* reported when a cell needs it */
		}
	});
