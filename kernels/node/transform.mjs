/*
 * transform.mjs: turns one cell of JavaScript into the body of an async
 * function that keeps REPL semantics across cells.
 *
 * The cell is parsed with acorn (sloppy script, top-level await, import and
 * export allowed) and edited as text, so every line of the cell stays on its
 * line (stack traces and syntax errors point at the user's lines; columns
 * may shift where code is inserted). The edits:
 *
 *  - top-level const/let/var become assignments to globals
 *    (`void (x = 1, y = void 0)`), so the names outlive the cell (const
 *    loses its constness, redeclaring is allowed); so does `var` in blocks
 *    and for heads outside functions, as in the REPL; top-level functions
 *    stay hoisted and are copied to globals at the start; top-level
 *    classes become `C = class C {}`;
 *  - static imports become `({a: b} = await __e2b.import('m'))`, resolved
 *    from the current directory; `import()` anywhere becomes
 *    `__e2b.import()`, `import.meta` becomes `__e2b.meta`; `export` in front
 *    of a declaration is dropped;
 *  - the last top-level expression statement is returned, so the caller
 *    gets its (awaited) value;
 *  - every loop body and function body starts with an interrupt check
 *    (`__e2bI[0] && __e2b.stop()`), so SIGINT can stop busy code even
 *    after an await, when no vm watchdog can be active.
 *
 * Pure: no I/O, no globals. The names __e2b and __e2bI are the wrapper's
 * parameters (see wrap()).
 */
import { Parser } from 'acorn';

const CHECK = '__e2bI[0]&&__e2b.stop();';
const CHECK_EXPR = '__e2bI[0]&&__e2b.stop(),';
const LOOPS = new Set(['WhileStatement', 'DoWhileStatement', 'ForStatement',
	'ForInStatement', 'ForOfStatement']);
const FUNCS = new Set(['FunctionDeclaration', 'FunctionExpression',
	'ArrowFunctionExpression']);

const OPTIONS = {
	ecmaVersion: 'latest',
	sourceType: 'script',
	allowAwaitOutsideFunction: true,
	allowImportExportEverywhere: true,
	allowHashBang: true,
	locations: true,
};

/* A syntax error of the cell, with its 1-based line and 0-based column. */
export class CellSyntaxError extends SyntaxError {
	constructor(message, line, column) {
		super(message);
		this.name = 'SyntaxError';
		this.line = line;
		this.column = column;
	}
}

/* Text edits on the original source: insertions and small replacements that
 * never overlap. Insertions at one position are ordered: closers before
 * openers, inner closers before outer ones, outer openers before inner. */
class Edits {
	constructor(src) {
		this.src = src;
		this.list = [];
		this.seq = 0;
	}

	insert(pos, text, depth, close) {
		this.list.push({ start: pos, end: pos, text, depth, close: !!close,
			seq: this.seq++ });
	}

	replace(start, end, text) {
		this.list.push({ start, end, text, depth: 0, close: false,
			seq: this.seq++ });
	}

	apply() {
		const l = this.list.sort((a, b) => a.start - b.start ||
			(a.close !== b.close ? (a.close ? -1 : 1) : 0) ||
			(a.close ? b.depth - a.depth : a.depth - b.depth) ||
			a.seq - b.seq);
		let out = '';
		let at = 0;
		for (const e of l) {
			out += this.src.slice(at, e.start) + e.text;
			at = Math.max(at, e.end);
		}
		return out + this.src.slice(at);
	}
}

/* The names bound by a binding pattern. */
function patternNames(p, out) {
	if (!p)
		return out;
	switch (p.type) {
	case 'Identifier':
		out.push(p.name);
		break;
	case 'ObjectPattern':
		for (const q of p.properties)
			patternNames(q.type === 'RestElement' ? q.argument : q.value, out);
		break;
	case 'ArrayPattern':
		for (const q of p.elements)
			patternNames(q, out);
		break;
	case 'AssignmentPattern':
		patternNames(p.left, out);
		break;
	case 'RestElement':
		patternNames(p.argument, out);
		break;
	}
	return out;
}

function parse(src) {
	try {
		return Parser.parse(src, OPTIONS);
	} catch (e) {
		if (e instanceof SyntaxError && e.loc)
			throw new CellSyntaxError(e.message, e.loc.line, e.loc.column);
		throw e;
	}
}

/* A cell that is an object literal ({a: 1}) parses as a block; like the
 * Node REPL, prefer the expression when it parses as one. */
function parseCell(src) {
	const t = src.trim();
	if (t.startsWith('{') && !t.endsWith(';')) {
		try {
			const wrapped = `(${src}\n)`;
			const ast = Parser.parse(wrapped, OPTIONS);
			if (ast.body.length === 1 &&
			    ast.body[0].type === 'ExpressionStatement')
				return { src: wrapped, ast };
		} catch {
			/* not an expression: a block it is */
		}
	}
	return { src, ast: parse(src) };
}

/* Visits every node below node with its depth (children before siblings). */
function walk(node, depth, fn) {
	fn(node, depth);
	for (const key in node) {
		if (key === 'loc')
			continue;
		const v = node[key];
		if (Array.isArray(v)) {
			for (const c of v)
				if (c && typeof c.type === 'string')
					walk(c, depth + 1, fn);
		} else if (v && typeof v.type === 'string') {
			walk(v, depth + 1, fn);
		}
	}
}

/* The interrupt checks, import() and import.meta, anywhere in the cell. */
function instrument(ast, ed) {
	walk(ast, 0, (n, d) => {
		if (LOOPS.has(n.type)) {
			const b = n.body;
			if (b.type === 'BlockStatement') {
				ed.insert(b.start + 1, CHECK, d + 1, false);
			} else {
				ed.insert(b.start, '{' + CHECK, d + 1, false);
				ed.insert(b.end, '}', d + 1, true);
			}
		} else if (FUNCS.has(n.type)) {
			const b = n.body;
			if (b.type === 'BlockStatement') {
				/* After the directive prologue, so "use strict" stays one. */
				let pos = b.start + 1;
				for (const s of b.body) {
					if (s.type !== 'ExpressionStatement' || !s.directive)
						break;
					pos = s.end;
				}
				ed.insert(pos, CHECK, d + 1, false);
			} else {
				ed.insert(b.start, '(' + CHECK_EXPR, d + 1, false);
				ed.insert(b.end, ')', d + 1, true);
			}
		} else if (n.type === 'ImportExpression') {
			ed.replace(n.start, n.start + 'import'.length, '__e2b.import');
		} else if (n.type === 'MetaProperty' && n.meta.name === 'import') {
			ed.replace(n.start, n.end, '__e2b.meta');
		}
	});
}

function newlines(s) {
	let n = 0;
	for (const c of s)
		if (c === '\n')
			n++;
	return '\n'.repeat(n);
}

/* One static import declaration as an awaited dynamic import. */
function importCode(src, n, names) {
	const spec = n.source.raw;
	const attrs = n.attributes && n.attributes.length ?
		`, {with: {${n.attributes.map((a) => src.slice(a.start, a.end))
			.join(', ')}}}` : '';
	const call = `await __e2b.import(${spec}${attrs})`;
	let ns = null;
	const props = [];
	for (const s of n.specifiers) {
		names.push(s.local.name);
		if (s.type === 'ImportNamespaceSpecifier')
			ns = s.local.name;
		else if (s.type === 'ImportDefaultSpecifier')
			props.push(`default: ${s.local.name}`);
		else
			props.push(`${s.imported.type === 'Literal' ? s.imported.raw :
				s.imported.name}: ${s.local.name}`);
	}
	let code;
	if (props.length)
		code = `;({${props.join(', ')}} = ${ns ? ns + ' = ' : ''}${call});`;
	else if (ns)
		code = `;(${ns} = ${call});`;
	else
		code = `;${call};`;
	return code + newlines(src.slice(n.start, n.end));
}

/* `var` below the top level but outside functions (in blocks, for heads)
 * is function-scoped in the wrapper; make it global too, as the REPL does:
 * a for head loses the keyword, a statement becomes assignments. */
function nestedVars(node, ed, names, top) {
	if (!node || typeof node.type !== 'string' || FUNCS.has(node.type) ||
	    node.type === 'StaticBlock')
		return;
	if (!top && node.type === 'VariableDeclaration' && node.kind === 'var') {
		for (const d of node.declarations)
			names.push(...patternNames(d.id, []));
		if (node.head) {
			ed.replace(node.start, node.start + 3, '');
		} else {
			varStatement(node, ed);
		}
	}
	for (const key in node) {
		if (key === 'loc')
			continue;
		const v = node[key];
		if (key === 'init' || key === 'left')
			if (v && v.type === 'VariableDeclaration' &&
			    (node.type === 'ForStatement' || node.type === 'ForInStatement' ||
			     node.type === 'ForOfStatement'))
				v.head = true;
		if (Array.isArray(v))
			v.forEach((c) => nestedVars(c, ed, names, false));
		else if (v && typeof v.type === 'string')
			nestedVars(v, ed, names, false);
	}
}

/* A declaration statement as a parenthesized list of assignments. */
function varStatement(n, ed) {
	ed.replace(n.start, n.start + n.kind.length, 'void (');
	for (const d of n.declarations) {
		if (!d.init)
			ed.insert(d.id.end, n.kind === 'var' ? ` = ${d.id.name}` :
				' = void 0', 1, true);
	}
	ed.insert(n.declarations[n.declarations.length - 1].end, ')', 0, true);
}

/* Top-level declarations become globals. Returns nothing; fills names
 * (to declare) and funcs (hoisted functions to copy to globals). */
function declarations(src, stmt, ed, names, funcs) {
	let n = stmt;
	if (n.type === 'ExportNamedDeclaration' && n.declaration) {
		ed.replace(n.start, n.declaration.start, '');
		n = n.declaration;
	}
	switch (n.type) {
	case 'VariableDeclaration':
		for (const d of n.declarations)
			names.push(...patternNames(d.id, []));
		varStatement(n, ed);
		break;
	case 'FunctionDeclaration':
		names.push(n.id.name);
		funcs.push(n.id.name);
		break;
	case 'ClassDeclaration':
		names.push(n.id.name);
		ed.insert(n.start, `;${n.id.name} = `, 0, false);
		ed.insert(n.end, ';', 0, true);
		break;
	case 'ImportDeclaration':
		ed.replace(n.start, n.end, importCode(src, n, names));
		break;
	}
}

/*
 * Transforms the cell source. Returns {body, names, funcs}: body is the
 * function body (as many lines as src, or one more), names the top-level
 * names it assigns, funcs the top-level function declarations. Throws
 * CellSyntaxError.
 */
export function transform(source) {
	let src = source;
	if (src.startsWith('#!'))
		src = src.replace(/^#![^\n]*/, (m) => ' '.repeat(m.length));
	const cell = parseCell(src);
	src = cell.src;
	const ed = new Edits(src);
	const names = [];
	const funcs = [];
	instrument(cell.ast, ed);
	const body = cell.ast.body;
	for (const stmt of body) {
		declarations(src, stmt, ed, names, funcs);
		nestedVars(stmt.type === 'ExportNamedDeclaration' &&
			stmt.declaration ? stmt.declaration : stmt, ed, names, true);
	}
	const last = body[body.length - 1];
	if (last && last.type === 'ExpressionStatement') {
		/* At the statement's start: a parenthesized expression starts
		 * after its parenthesis. */
		ed.insert(last.start, 'return (', -1, false);
		ed.insert(last.expression.end, ')', -1, true);
	}
	return { body: ed.apply(), names: [...new Set(names)], funcs };
}

/*
 * The script text of a whole cell: an async arrow taking (__e2b, __e2bI).
 * Its first line is the wrapper's, so compile it with lineOffset -1.
 */
export function wrap(source) {
	const t = transform(source);
	const pro = [];
	if (t.names.length)
		pro.push(`__e2b.declare(${JSON.stringify(t.names)});`);
	for (const f of t.funcs)
		pro.push(`__e2b.g[${JSON.stringify(f)}] = ${f};`);
	return `(async (__e2b, __e2bI) => {${pro.join(' ')}\n${t.body}\n})`;
}
