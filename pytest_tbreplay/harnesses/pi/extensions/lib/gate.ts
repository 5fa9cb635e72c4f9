// Verify-before-done's gate, pytest_tbreplay/policies/gate.py ported line for line: what a trial
// produced (armed) and what checked it. The rules are data (data/verify_rules.json, handed over
// in the extension config), and both implementations run the vectors in
// tests/data/verify_cases.json. Not an extension: a module the extensions import.

type Rules = {
	patterns: Record<string, string>;
	not_files: string[];
	prefixes: string[];
	existence_only: string[];
	copy_like: string[];
	touch_like: string[];
	in_place: string[];
	builders: string[];
	o_writers: string[];
	interpreters: string[];
};

function normpath(p: string): string {
	if (!p) return ".";
	const abs = p.startsWith("/");
	const parts: string[] = [];
	for (const c of p.split("/")) {
		if (!c || c === ".") continue;
		if (c === "..") {
			if (parts.length && parts[parts.length - 1] !== "..") parts.pop();
			else if (!abs) parts.push("..");
			continue;
		}
		parts.push(c);
	}
	return (abs ? "/" : "") + parts.join("/") || (abs ? "/" : ".");
}

const basename = (p: string) => p.slice(p.lastIndexOf("/") + 1);
const dirname = (p: string) => {
	const i = p.lastIndexOf("/");
	const d = p.slice(0, i + 1);
	return d && d !== "/".repeat(d.length) ? d.replace(/\/+$/, "") : d;
};

function resolve(path: string, cwd: string | null): string {
	path = path.replace(/^['"]+|['"]+$/g, "");
	if (cwd && !path.startsWith("/")) path = cwd.endsWith("/") ? cwd + path : `${cwd}/${path}`;
	return path ? normpath(path) : path;
}

/** A criterion names the artifact: its path, or a file name with an extension (gate.py _names). */
function names(text: string, artifact: string): boolean {
	const base = basename(artifact);
	return text.includes(artifact) || (base.includes(".") && text.includes(base));
}

/** shlex.split (POSIX mode, no comments); throws on an unclosed quote as Python's does. */
function shellWords(text: string): string[] {
	const words: string[] = [];
	let cur = "", inWord = false, i = 0;
	while (i < text.length) {
		const ch = text[i];
		if (ch === "'") {
			const j = text.indexOf("'", i + 1);
			if (j < 0) throw new Error("No closing quotation");
			cur += text.slice(i + 1, j);
			inWord = true;
			i = j + 1;
		} else if (ch === '"') {
			let j = i + 1;
			for (; j < text.length && text[j] !== '"'; j++) {
				if (text[j] === "\\" && j + 1 < text.length && '\\"$`\n'.includes(text[j + 1])) j++;
				cur += text[j];
			}
			if (j >= text.length) throw new Error("No closing quotation");
			inWord = true;
			i = j + 1;
		} else if (ch === "\\") {
			if (i + 1 >= text.length) throw new Error("No escaped character");
			cur += text[i + 1];
			inWord = true;
			i += 2;
		} else if (/\s/.test(ch)) {
			if (inWord) words.push(cur);
			cur = "";
			inWord = false;
			i++;
		} else {
			cur += ch;
			inWord = true;
			i++;
		}
	}
	if (inWord) words.push(cur);
	return words;
}

function heredocsOut(command: string): string {
	return command.replace(/<<-?\s*['"]?(\w+)['"]?[\s\S]*?\n[\s\S]*?\n\1\b/g, "");
}

function substitutions(text: string): [string, string[]] {
	const out: string[] = [], inner: string[] = [];
	let i = 0;
	while (i < text.length) {
		if (text.startsWith("$(", i)) {
			let depth = 1, j = i + 2;
			while (j < text.length && depth) {
				depth += text[j] === "(" ? 1 : text[j] === ")" ? -1 : 0;
				j++;
			}
			inner.push(text.slice(i + 2, j - 1));
			out.push(`\0${inner.length - 1}\0`);
			i = j;
		} else if (text[i] === "`") {
			let j = text.indexOf("`", i + 1);
			j = j < 0 ? text.length : j;
			inner.push(text.slice(i + 1, j));
			out.push(`\0${inner.length - 1}\0`);
			i = j + 1;
		} else {
			out.push(text[i]);
			i++;
		}
	}
	return [out.join(""), inner];
}

function redirects(words: string[]): [string[], string[]] {
	const targets: string[] = [], rest: string[] = [];
	let i = 0;
	while (i < words.length) {
		const m = /^(\d*)(>>?|<)\|?(\S*)$/.exec(words[i]);
		if (!m) {
			rest.push(words[i]);
			i++;
			continue;
		}
		const target = m[3] || (i + 1 < words.length ? words[i + 1] : "");
		i += m[3] ? 1 : 2;
		if (m[2] !== "<" && (m[1] === "" || m[1] === "1") && target && !target.startsWith("&")) targets.push(target);
	}
	return [targets, rest];
}

function cwdOf(command: string): string | null {
	const m = /^\s*cd\s+(\S+)\s*(?:&&|;)/.exec(command);
	return m ? m[1] : null;
}

const uniq = (xs: string[]) => [...new Set(xs)];

export class VerifyGate {
	armed = new Map<string, string>(); // unchecked artifact -> what produced it
	artifacts: string[] = []; // every artifact produced so far, in order
	scriptOutputs = new Map<string, string[]>(); // a written script -> files its code writes
	builtFrom = new Map<string, string[]>(); // a built program -> the artifacts it was built from
	private re: Record<string, RegExp>;

	constructor(private rules: Rules, private successPattern: string) {
		this.re = Object.fromEntries(
			Object.entries(rules.patterns).map(([k, v]) => [k, new RegExp(v, k.startsWith("result") ? "gi" : "g")]),
		);
	}

	segments(command: string): string[][] {
		const [body, inner] = substitutions(heredocsOut(command));
		const out: string[][] = [];
		const parts: string[] = [];
		let cur = "", quote: string | null = null;
		for (const ch of body) {
			if (quote) quote = ch === quote ? null : quote;
			else if (ch === "'" || ch === '"') quote = ch;
			else if (";&|\n".includes(ch)) {
				parts.push(cur);
				cur = "";
				continue;
			}
			cur += ch;
		}
		parts.push(cur);
		for (let part of parts) {
			for (const m of part.matchAll(/\0(\d+)\0/g)) out.push(...this.segments(inner[Number(m[1])]));
			part = part.replace(/\0\d+\0/g, "_");
			let words: string[];
			try {
				words = shellWords(part);
			} catch {
				words = part.split(/\s+/).filter(Boolean);
			}
			while (words.length && (/^[A-Za-z_]\w*=/.test(words[0]) || this.rules.prefixes.includes(words[0])))
				words = words[0] !== "timeout" ? words.slice(1) : words.slice(2);
			if (words.length) out.push(words);
		}
		return out;
	}

	codeOutputs(code: string, shell: boolean): string[] {
		const keys = ["code_open_write", "code_write_call", ...(shell ? ["shell_redirect", "shell_tee"] : [])];
		const found: string[] = [];
		for (const k of keys) for (const m of code.matchAll(this.re[k])) found.push(m.slice(1).find((g) => g)!);
		return found.filter((f) => !this.rules.not_files.includes(f));
	}

	/** Book one tool call and its result; true if it checked produced output. */
	observe(name: string, args: any, output = "", isError = false): boolean {
		const [produced, checked] = this.classify(name, args ?? {}, output, isError);
		for (const p of checked) this.armed.delete(p);
		for (const [p, by] of produced) {
			if (!checked.has(p)) this.armed.set(p, by);
			if (!this.artifacts.includes(p)) this.artifacts.push(p);
		}
		return checked.size > 0;
	}

	classify(name: string, args: any, output = "", isError = false): [Map<string, string>, Set<string>] {
		if (name === "write" || name === "edit") {
			const path = resolve(String(args.path ?? ""), null);
			if (name === "write") {
				const content = String(args.content ?? "");
				const shell = path.endsWith(".sh") || content.startsWith("#!/bin/");
				this.scriptOutputs.set(path, this.codeOutputs(content, shell).map((f) => resolve(f, dirname(path))));
			}
			return [new Map(path && !isError ? [[path, `${name} ${path}`]] : []), new Set()];
		}
		if (name === "read") {
			const path = resolve(String(args.path ?? ""), null);
			return [new Map(), new Set(isError ? [] : [...this.armed.keys()].filter((a) => a === path))];
		}
		if (name !== "bash") return [new Map(), new Set()];
		return this.bash(String(args.command ?? ""), output, isError);
	}

	private bash(command: string, output: string, isError: boolean): [Map<string, string>, Set<string>] {
		const r = this.rules, cwd = cwdOf(command);
		const by = `\`${command.length <= 80 ? command : command.slice(0, 77) + "..."}\``;
		const code = uniq(this.codeOutputs(command, false).map((f) => resolve(f, cwd)));
		const produced = new Map<string, string>(code.map((c) => [c, by]));
		let checked = new Set<string>();
		const tested = new Set<string>(); // checked by tests or a check script: counts even when they fail
		const current = () => [...this.armed.keys(), ...produced.keys()];
		for (const words of this.segments(command)) {
			const prog = basename(words[0]), args = words.slice(1);
			const script = this.scriptRun(words[0], prog, args, cwd);
			let outputs = this.segmentOutputs(prog, args, cwd);
			if (this.isTestRun(prog, args, script)) {
				for (const a of current()) if (!code.includes(a)) tested.add(a);
				for (const a of tested) checked.add(a);
				for (const o of outputs) produced.set(o, by);
				continue;
			}
			const producer = script !== null && (this.scriptOutputs.get(script) ?? []).length > 0;
			if (producer) {
				outputs = [...outputs, ...this.scriptOutputs.get(script!)!];
				if (!isError) this.armed.delete(script!);
			}
			const out = r.builders.includes(prog) ? this.flagValue(args, "-o") : null;
			if (out) this.builtFrom.set(resolve(out, cwd), current().filter((a) => args.some((w) => this.mentions(w, a, cwd))));
			for (const t of outputs) {
				produced.set(t, by);
				checked.delete(t);
			}
			if (outputs.length || producer) continue;
			const live = current().filter((a) => !code.includes(a));
			if (script && live.includes(script)) {
				checked.add(script);
				for (const s of this.builtFrom.get(script) ?? []) checked.add(s);
			} else if (!r.existence_only.includes(prog)) {
				for (const a of live) if (args.some((w) => this.mentions(w, a, cwd))) checked.add(a);
			}
		}
		if (!isError) {
			for (const m of (output ?? "").matchAll(this.re.result_wrote)) {
				const p = resolve(m[1].replace(/[.,:;]+$/, ""), cwd);
				if (!produced.has(p)) produced.set(p, by);
			}
		} else checked = new Set(tested); // a failing test run was seen; a read of a missing file checked nothing
		return [produced, checked];
	}

	private segmentOutputs(prog: string, args: string[], cwd: string | null): string[] {
		const r = this.rules;
		const [out, rest] = redirects(args);
		const files = rest.filter((a) => !a.startsWith("-"));
		if (prog === "tee") out.push(...files);
		if (r.copy_like.includes(prog) && files.length >= 2) out.push(files[files.length - 1]);
		else if (r.touch_like.includes(prog)) out.push(...files);
		else if (r.in_place.includes(prog) && rest.some((a) => a.startsWith("-i") || a === "--in-place") && files.length)
			out.push(files[files.length - 1]);
		const value = this.flagValue(rest, "-o") ?? this.flagValue(rest, "--output");
		if (value && (r.builders.includes(prog) || r.o_writers.includes(prog))) out.push(value);
		return out.filter((f) => !r.not_files.includes(f)).map((f) => resolve(f, cwd));
	}

	private flagValue(args: string[], flag: string): string | null {
		for (let i = 0; i < args.length; i++) {
			const a = args[i];
			if (a === flag && i + 1 < args.length) return args[i + 1];
			if (a.startsWith(flag + "=") || (flag === "-o" && a.startsWith("-o") && a.length > 2 && !a.startsWith("-o=")))
				return a.includes("=") ? a.split("=").slice(1).join("=") : a.slice(2);
		}
		return null;
	}

	private scriptRun(first: string, prog: string, args: string[], cwd: string | null): string | null {
		if (first.includes("/")) return resolve(first, cwd);
		if (this.rules.interpreters.includes(prog)) {
			const files = args.filter((a) => !a.startsWith("-"));
			return files.length && !["-c", "-m", "-"].includes(args[0]) ? resolve(files[0], cwd) : null;
		}
		return null;
	}

	private isTestRun(prog: string, args: string[], script: string | null): boolean {
		const test = new RegExp(this.rules.patterns.test_command);
		if (test.test([prog, ...args.slice(0, 2)].join(" "))) return true;
		return !!script && new RegExp(this.rules.patterns.check_script).test(basename(script));
	}

	private mentions(word: string, artifact: string, cwd: string | null): boolean {
		const base = basename(artifact);
		for (const piece of word.split(/[\s'"(),=\[\]{}]+/))
			if (piece && (piece === artifact || resolve(piece, cwd) === artifact || (piece.includes(".") && piece === base)))
				return true;
		return false;
	}

	/** The message that sends a success claim over unchecked output back, or null. */
	demand(finalText: string, acceptance: string[]): string | null {
		if (!this.armed.size || !new RegExp(this.successPattern, "i").test(finalText ?? "")) return null;
		const keys = [...this.armed.keys()];
		// What the task's criteria name comes first, then what the claim names (gate.py demand).
		const wanted = keys.filter((a) => acceptance.some((c) => names(c, a)));
		const named = keys.filter((a) => !wanted.includes(a) && (finalText.includes(a) || finalText.includes(basename(a))));
		const about = [...wanted, ...named, ...keys.filter((a) => !wanted.includes(a) && !named.includes(a))];
		const how = about.map((a) => `${a} (by ${this.armed.get(a)})`).join("; ");
		const criteria = acceptance.map((c) => `- ${c}`).join("\n") || "- (see the task)";
		const many = about.length > 1;
		return (
			`You claimed success, but nothing has checked your work since it produced ${about.join(", ")}: ` +
			`no test or check ran on ${many ? "them" : "it"} and ${many ? "they were" : "it was"} not read back (${how}). ` +
			`Re-running what produced an output is not a check. Check it now against the task's acceptance criteria, ` +
			`quoted here, and report only what the output shows:\n${criteria}`
		);
	}
}
