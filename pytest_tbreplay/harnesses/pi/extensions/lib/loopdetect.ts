// pytest_tbreplay/policies/loopdetect.py, line for line: the same rules, parameters from Python (config.loop
// is LoopDetector().params()). Both are run against tests/vectors/loopdetect.json (make_loopdetect.py); read the
// Python module for why each rule is as it is. Plain functions, no pi imports. Characters are
// counted in code points (as Python counts them), not UTF-16 units.

export interface StreamParams {
	k: number; window: number; horizon: number; recur: number; novel_max: number; names_max: number;
	values_max: number; values_rate: number; reach: number; prose: number; repeat: number; novel_max_prose: number; drift: number; gap: number;
	aligned: number; run3: number; run2: number; word_max: number; run_min: number; period_max: number;
	few_chars: number; newlines_max: number; space_max: number;
	beta: number; x_drop: number; match: number; margin: number; margin_per_lag: number; min_run: number;
	novel_per_word: number; sent_recur: number; sent_margin: number; sent_max: number; sent_lags: number;
}

export interface LoopParams { text: StreamParams; arguments: StreamParams }

const WS = /[ \t\n\r\f\v]+/g;
const TEXT_SEP = /([ \t\n\r\f\v]+)/;
const ARGS_SEP = /((?:[ \t\n\r\f\v]|\\[ntr])+)/;
const EDGE = /^[^0-9A-Za-z]+|[^0-9A-Za-z]+$/g;
const VALUE = /^(?:(?:0[xX]|[Uu]\+?)?[0-9A-Fa-f]*[0-9][0-9A-Fa-f]*|[0-9][0-9_.,:/+-]*(?:[eE][+-]?[0-9][0-9_]*)?[jJ]?)$/;
const SENT_END = /[.!?]["')\]]*$/;
const PROSE_WORD = /^(?:(?:[A-Za-z][a-z]*(?:'[a-z]+)?|[0-9]+)[,.!?:;]?)$/;

export const fold = (w: string): string => w.replace(/[0-9]+/g, "0");
const edge = (w: string): string => w.replace(EDGE, "");
export function isValue(w: string): boolean {
	const core = edge(w);
	return core.length > 0 && VALUE.test(core);
}
// Code-point helpers: a string's length, and its last n code points.
const isAscii = (s: string): boolean => !/[^\x00-\x7f]/.test(s);
const cpLen = (s: string): number => (isAscii(s) ? s.length : Array.from(s).length);
function cpTail(s: string, n: number): string {
	if (s.length <= n) return s;
	if (isAscii(s)) return s.slice(-n);
	const a = Array.from(s);
	return a.length <= n ? s : a.slice(-n).join("");
}
const count = (s: string, sub: string): number => s.split(sub).length - 1;

type Cum = [number, number, number];

export class Stream {
	sep: RegExp;
	pending = "";
	run = "";
	runLen = 0;
	few = new Set<string>();
	fewLen = 0;
	wsNl = 0;
	wsLen = 0;
	nl = true;
	lineWords = 0;
	lineValues = 0;
	norm: string[] = [];
	pos = 0;
	last1 = new Map<string, number>();
	last2 = new Map<string, number>();
	seen = new Map<string, number>();
	ring: number[];
	s1 = 0; s2 = 0; plain = 0;
	words: string[] = [];
	lag = 0; gap = 0; hits = 0; start = 0;
	keys: string[];
	cum: Cum[];
	cumLast: Cum = [0, 0, 0];
	offsets: number[];
	nwords: string[];
	wlag = 0; wstart = 0; whits = 0; wscore = 0; wbest = 0;
	sent: string[] = [];
	sent1 = new Map<string, number>();
	sent2 = new Map<string, number>();
	scum: number[];
	scumLast = 0;
	slags: number[];
	rule: string | null = null;

	p: StreamParams;
	args: boolean;

	constructor(p: StreamParams, args: boolean) {
		this.p = p;
		this.args = args;
		this.sep = args ? ARGS_SEP : TEXT_SEP;
		this.ring = new Array(p.window).fill(0);
		this.keys = new Array(p.horizon).fill("");
		this.nwords = new Array(p.horizon).fill("");
		this.cum = new Array(p.horizon).fill([0, 0, 0]);
		this.scum = new Array(p.horizon).fill(0);
		this.slags = new Array(p.sent_lags).fill(0);
		this.offsets = [0];
		for (let j = 1; j <= p.drift; j++) this.offsets.push(-j, j);
	}

	feed(text: string): boolean {
		const p = this.p;
		text = this.pending + text;
		this.pending = "";
		if (this.args && text.endsWith("\\")) {
			let b = 0;
			while (b < text.length && text[text.length - 1 - b] === "\\") b++;
			if (b % 2 === 1) {
				text = text.slice(0, -1);
				this.pending = "\\";
			}
		}
		if (this.args) text = text.split("\\\\").join("\0\0"); // an escaped backslash is part of a word
		const bare = Array.from(text.replace(WS, ""));
		if (bare.length) {
			const chars = new Set(bare);
			const both = new Set([...this.few, ...chars]);
			if (both.size <= p.few_chars) {
				this.few = both;
				this.fewLen += bare.length;
			} else if (chars.size <= p.few_chars) {
				this.few = chars;
				this.fewLen = bare.length;
			} else {
				this.few = new Set();
				this.fewLen = 0;
			}
			if (this.fewLen >= p.run_min) return this.trip("few-chars");
		}
		const parts = text.split(this.sep);
		for (let i = 0; i < parts.length; i++) {
			const part = parts[i];
			if (i % 2 === 0) {
				if (!part) continue;
				this.wsNl = this.wsLen = 0;
				this.run += part;
				this.runLen += cpLen(part);
				if (this.run.length > 2 * p.run_min && cpLen(this.run) > 2 * p.run_min) this.run = cpTail(this.run, p.run_min);
				if (this.runLen >= p.run_min && this.periodic()) return this.trip("run");
			} else {
				if (this.run) {
					if (this.word(cpTail(this.run, p.word_max))) return true;
					this.run = "";
					this.runLen = 0;
				}
				const nls = count(part, "\n") + (this.args ? count(part, "\\n") : 0);
				if (nls) this.nl = true;
				this.wsNl += nls;
				this.wsLen += part.length;
				if (this.wsNl >= p.newlines_max || this.wsLen >= p.space_max) return this.trip("whitespace");
			}
		}
		return false;
	}

	periodic(): boolean {
		const t = Array.from(cpTail(this.run, this.p.run_min));
		for (let q = 1; q <= this.p.period_max; q++) {
			let ok = q < t.length || t.length === 0;
			for (let i = q; ok && i < t.length; i++) if (t[i] !== t[i - q]) ok = false;
			if (ok) return true;
		}
		return false;
	}

	word(w: string): boolean {
		const p = this.p;
		if (this.nl) {
			this.nl = false;
			this.lineWords = this.lineValues = 0;
		}
		this.lineWords++;
		const core = edge(w);
		const value = core.length > 0 && VALUE.test(core);
		if (value) this.lineValues++;
		const data = 2 * this.lineValues >= this.lineWords;
		const n = data ? w : fold(w);
		const pos = this.pos++;
		this.words.push(w);
		if (this.words.length > 64) this.words.splice(0, 32);
		const k = p.k, h = p.horizon;
		this.norm.push(n);
		const key = this.norm.slice(-k).join("\x01");
		if (this.norm.length >= k) this.norm.shift();
		let flags = 0;
		const q1 = this.last1.get(key), q2 = this.last2.get(key);
		if (q1 !== undefined) this.last2.set(key, q1);
		this.last1.set(key, pos);
		const d1 = q1 !== undefined && pos - q1 <= h && !data ? pos - q1 : 0;
		const d2 = q2 !== undefined && pos - q2 <= h && !data ? pos - q2 : 0;
		const lag = this.lag, keys = this.keys;
		let hit = 0;
		if (lag && !data) {
			for (const j of this.offsets) {
				if (lag + j > 0 && keys[(((pos - lag - j) % h) + h) % h] === key) {
					hit = lag + j;
					break;
				}
			}
		}
		keys[pos % h] = key;
		this.wordDiagonal(n, pos, data ? 0 : d1);
		if (hit) {
			this.lag = hit;
			this.gap = 0;
			this.hits++;
		} else if (lag && this.gap < p.gap && !(d1 && this.hits < p.aligned * (pos - this.start))) this.gap++;
		else if (d1) {
			this.lag = d1;
			this.gap = 0;
			this.hits = 1;
			this.start = pos;
		} else {
			this.lag = this.gap = this.hits = 0;
			this.start = pos + 1;
		}
		if (!data) {
			if (d1) flags = d2 ? 2 : 1;
			const plain = PROSE_WORD.test(w);
			const u = value ? core : n;
			const q = this.seen.get(u);
			if (q === undefined || pos - q > h) flags |= value ? 16 : plain ? 4 : 32;
			this.seen.set(u, pos);
			if (plain) flags |= 8;
		}
		if (pos % h === h - 1) {
			for (const m of [this.last1, this.last2, this.seen, this.sent1, this.sent2]) for (const [x, q] of m) if (pos - q > h) m.delete(x);
		}
		let c = this.cumLast;
		c = [c[0] + (flags & 4 ? 1 : 0), c[1] + (flags & 32 ? 1 : 0), c[2] + (flags & 16 ? 1 : 0)];
		this.cum[pos % h] = c;
		this.cumLast = c;
		const ring = this.ring, i = pos % p.window;
		const old = ring[i];
		ring[i] = flags;
		const b1 = (f: number) => ((f & 3) > 0 ? 1 : 0), b2 = (f: number) => ((f & 3) === 2 ? 1 : 0);
		const bit = (f: number, m: number) => (f & m ? 1 : 0);
		this.s1 += b1(flags) - b1(old);
		this.s2 += b2(flags) - b2(old);
		this.plain += bit(flags, 8) - bit(old, 8);
		const slag = this.sentence(w, fold(core), pos, data);
		if (pos + 1 < p.window) return false;
		if (this.period(pos)) return this.trip("period");
		if (slag && this.sentences(pos, slag)) return this.trip("sentences");
		const W = p.window;
		const run = pos + 1 - this.start;
		if (!this.lag || this.hits < p.aligned * run) return false;
		const h1 = h - 1;
		const b = this.cum[(pos - Math.min(Math.max(this.lag, W), h1, pos)) % h];
		const bn = this.cum[(pos - Math.min(Math.max(this.lag, W) + p.reach, h1, pos)) % h];
		const v = this.cum[(pos - Math.min(this.lag, h1, pos)) % h];
		const vw = this.cum[(pos - Math.min(W, h1, pos)) % h];
		if (run >= p.run3 && this.s2 >= p.recur * W && c[0] - b[0] <= p.novel_max && c[1] - b[1] <= p.names_max
			&& c[1] - bn[1] <= p.names_max + 1
			&& c[2] - v[2] <= p.values_max && (c[2] - vw[2]) * p.values_rate <= W) return this.trip("recur");
		const r = this.cum[(pos - Math.min(run, h1)) % h];
		if (run >= p.run2 && this.plain >= p.prose * W && this.s1 >= p.repeat * W && c[0] - r[0] <= p.novel_max_prose
			&& c[1] === r[1] && c[2] === r[2]) return this.trip("repeat");
		return false;
	}

	wordDiagonal(n: string, pos: number, d1: number): void {
		const p = this.p, h = p.horizon, nw = this.nwords;
		if (this.wlag) {
			if (nw[(pos - this.wlag) % h] === n) {
				this.wscore += 1;
				this.whits++;
			} else this.wscore -= p.beta;
			this.wbest = Math.max(this.wbest, this.wscore);
			if (this.wscore < this.wbest - p.x_drop) this.wlag = 0;
		}
		nw[pos % h] = n;
		if (d1 && d1 !== this.wlag && (!this.wlag || this.whits < p.match * (pos + 1 - this.wstart))) {
			this.wlag = d1;
			this.wstart = pos - p.k + 1;
			this.whits = p.k;
			this.wscore = this.wbest = p.k;
		}
	}

	period(pos: number): boolean {
		const p = this.p, lag = this.wlag;
		const run = pos + 1 - this.wstart;
		if (!lag || run < lag + Math.min(p.margin, p.margin_per_lag * lag) || run < p.min_run) return false;
		if (this.whits < p.match * run || this.plain < p.prose * p.window) return false;
		const c = this.cumLast, b = this.cum[(pos - Math.min(run, p.horizon - 1)) % p.horizon];
		return (c[0] - b[0] + c[1] - b[1]) * p.novel_per_word <= run;
	}

	sentence(w: string, n: string, pos: number, data: boolean): number {
		const p = this.p, h = p.horizon;
		let lag = 0;
		if (data) this.sent = [];
		else {
			this.sent.push(n.toLowerCase());
			if (SENT_END.test(w) || this.sent.length >= p.sent_max) {
				const key = this.sent.join("\x01"), size = this.sent.length;
				this.sent = [];
				const q1 = this.sent1.get(key), q2 = this.sent2.get(key);
				if (q1 !== undefined) this.sent2.set(key, q1);
				this.sent1.set(key, pos);
				if (q2 !== undefined && pos - q2 <= h) {
					this.scumLast += size;
					this.slags = [...this.slags.slice(1), pos - (q1 as number)];
					lag = Math.max(...this.slags);
				}
			}
		}
		this.scum[pos % h] = this.scumLast;
		return lag;
	}

	sentences(pos: number, lag: number): boolean {
		const p = this.p, W = p.window, h = p.horizon;
		const span = Math.max(W, lag + p.sent_margin);
		if (span >= Math.min(h, pos + 1) || this.plain < p.prose * W) return false;
		if (this.scumLast - this.scum[(pos - span) % h] < p.sent_recur * span) return false;
		const c = this.cumLast, b = this.cum[(pos - span) % h];
		return c[0] - b[0] <= p.novel_max && c[1] - b[1] <= p.names_max && c[2] - b[2] <= p.values_max;
	}

	trip(rule: string): boolean {
		this.rule = rule;
		return true;
	}
}

export class LoopDetector {
	text: Stream;
	args: Stream;
	tripped = false;
	rule: string | null = null;

	p: LoopParams;

	constructor(p: LoopParams) {
		this.p = p;
		this.text = new Stream(p.text, false);
		this.args = new Stream(p.arguments, true);
	}

	/** The last few words of the text (for logs). */
	get words(): string[] {
		return this.text.words;
	}

	/** Streamed text (content or reasoning); true once a loop is evident (and from then on). */
	feed(text: string): boolean {
		if (this.tripped) return true;
		if (this.text.feed(text)) {
			this.tripped = true;
			this.rule = this.text.rule;
		}
		return this.tripped;
	}

	/** Streamed tool-call arguments (JSON text); true once they loop. */
	feedArguments(text: string): boolean {
		if (this.tripped) return true;
		if (this.args.feed(text)) {
			this.tripped = true;
			this.rule = "arguments-" + this.args.rule;
		}
		return this.tripped;
	}
}
