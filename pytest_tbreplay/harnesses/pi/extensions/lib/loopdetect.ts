// pytest_tbreplay/policies/loopdetect.py, line for line: the same rules, parameters from Python (config.loop
// is LoopDetector().params()). Both are run against tests/vectors/loopdetect.json; read the Python
// module for why each rule is as it is. Plain functions, no pi imports: the vector runner loads it.

export interface PeriodRule {
	beta: number;
	margin: number;
	margin_per_lag_word: number;
	min_run: number;
	prose_share: number | null;
	novel_per_word: number;
	strict_rate: number;
	strict_cycles: number;
	min_distinct: number;
	x_drop: number;
	k: number;
	max_lag: number;
	max_candidates: number;
}

export interface LoopParams {
	n: number;
	window: number;
	threshold: number;
	every: number;
	pool_prose: number;
	text: PeriodRule;
	arguments: PeriodRule;
}

const TEXT_SPACE = /[ \t\n\r\f\v]+/;
const ARGS_SPACE = /(?:[ \t\n\r\f\v]|\\[ntr])+/;
const PROSE_WORD = /^(?:[A-Za-z][a-z]*(?:'[a-z]+)?|[0-9]+)[,.!?]?$/;

export function fold(word: string): string {
	return word.includes("/") ? word.replace(/[A-Za-z0-9_.-]+/g, "0") : word.replace(/[0-9]+/g, "0");
}

export function repeatedNgramRate(words: string[], n: number): number {
	const seen = new Set<string>();
	let grams = 0, repeats = 0;
	for (let i = 0; i + n <= words.length; i++) {
		const g = words.slice(i, i + n).join("\u0000");
		grams++;
		if (seen.has(g)) repeats++;
		seen.add(g);
	}
	return grams ? repeats / grams : 0;
}

interface Candidate { lag: number; start: number; score: number; best: number; bestPos: number; matches: number; bestMatches: number }

export class PeriodDetector {
	raw: string[] = [];
	norm: string[] = [];
	novel: number[] = [0];
	prose: number[] = [0];
	base = 0;
	last = new Map<string, number>();
	seen = new Map<string, number>();
	cands: Candidate[] = [];
	trippedLag = 0;

	constructor(public r: PeriodRule) {}

	word(w: string): boolean {
		const r = this.r, p = this.base + this.raw.length;
		const folded = fold(w);
		this.raw.push(w);
		this.norm.push(folded);
		this.novel.push(this.novel[this.novel.length - 1] + (this.seen.has(folded) ? 0 : 1));
		this.seen.set(folded, p);
		this.prose.push(this.prose[this.prose.length - 1] + (PROSE_WORD.test(w) ? 1 : 0));
		if (this.raw.length > 2 * r.max_lag) {
			const m = r.max_lag;
			for (const a of [this.raw, this.norm, this.novel, this.prose] as any[][]) a.splice(0, m);
			this.base += m;
			for (const map of [this.last, this.seen]) for (const [k, q] of map) if (q < this.base) map.delete(k);
		}
		for (const c of this.cands) this.extend(c, p);
		this.cands = this.cands.filter((c) => c.score >= c.best - r.x_drop);
		if (p >= r.k - 1) {
			const key = this.norm.slice(p - this.base - r.k + 1, p - this.base + 1).join(" ");
			const q = this.last.get(key);
			this.last.set(key, p);
			if (q !== undefined && p - q <= r.max_lag && this.cands.every((c) => c.lag !== p - q)) this.add(p - q, p);
		}
		for (const c of this.cands) {
			if (this.fires(c)) {
				this.trippedLag = c.lag;
				return true;
			}
		}
		return false;
	}

	match(i: number, lag: number): boolean {
		return this.raw[i - this.base] === this.raw[i - lag - this.base];
	}

	extend(c: Candidate, p: number): void {
		if (this.match(p, c.lag)) {
			c.score += 1;
			c.matches += 1;
		} else c.score -= this.r.beta;
		if (c.score > c.best) {
			c.best = c.score;
			c.bestPos = p;
			c.bestMatches = c.matches;
		}
	}

	add(lag: number, p: number): void {
		let score = 0, best = 0, matches = 0, bestMatches = 0, start = p, i = p;
		while (i - lag >= this.base && score >= best - this.r.x_drop) {
			if (this.match(i, lag)) {
				score += 1;
				matches += 1;
			} else score -= this.r.beta;
			if (score >= best) {
				best = score;
				start = i;
				bestMatches = matches;
			}
			i -= 1;
		}
		if (best <= 0) return;
		if (this.cands.length >= this.r.max_candidates) {
			let weakest = this.cands[0];
			for (const c of this.cands) if (c.best < weakest.best) weakest = c;
			if (weakest.best >= best) return;
			this.cands.splice(this.cands.indexOf(weakest), 1);
		}
		this.cands.push({ lag, start, score: best, best, bestPos: p, matches: bestMatches, bestMatches });
	}

	proseInLast(n: number): number {
		return this.prose[this.prose.length - 1] - this.prose[Math.max(0, this.prose.length - 1 - n)];
	}

	count(sums: number[], first: number, last: number): number {
		return sums[last + 1 - this.base] - sums[Math.max(first, this.base) - this.base];
	}

	fires(c: Candidate): boolean {
		const r = this.r, run = c.bestPos - c.start + 1;
		if (run < c.lag + Math.min(r.margin, r.margin_per_lag_word * c.lag) || run < r.min_run) return false;
		const cycle = c.bestPos - c.lag + 1;
		const novel = this.count(this.novel, c.start, c.bestPos);
		const loose = r.prose_share !== null && this.count(this.prose, cycle, c.bestPos) >= r.prose_share * c.lag
			&& novel * r.novel_per_word <= run;
		const strict = !loose && run >= r.strict_cycles * c.lag && c.bestMatches >= r.strict_rate * run && novel === 0;
		if (!(loose || strict)) return false;
		return new Set(this.raw.slice(Math.max(cycle, this.base) - this.base, c.bestPos + 1 - this.base)).size >= r.min_distinct;
	}
}

class Words {
	partial = "";
	constructor(private space: RegExp) {}

	add(text: string): string[] {
		const parts = (this.partial + text).split(this.space);
		this.partial = parts.pop()!;
		return parts.filter(Boolean);
	}
}

export class LoopDetector {
	words: string[] = [];
	text = new Words(TEXT_SPACE);
	args = new Words(ARGS_SPACE);
	sinceCheck = 0;
	period: PeriodDetector;
	argsPeriod: PeriodDetector;
	tripped = false;
	rule: string | null = null;
	rate = 0;

	constructor(public p: LoopParams) {
		this.period = new PeriodDetector(p.text);
		this.argsPeriod = new PeriodDetector(p.arguments);
	}

	/** Streamed text (content or reasoning); true once a loop is evident (and from then on). */
	feed(text: string): boolean {
		if (this.tripped) return true;
		const { n, window, threshold, every } = this.p;
		for (const w of this.text.add(text)) {
			this.words.push(w);
			if (this.words.length > 2 * window) this.words.splice(0, window);
			this.sinceCheck++;
			if (this.period.word(w)) return this.trip("period");
			if (this.sinceCheck >= every && this.words.length >= window) {
				this.sinceCheck = 0;
				this.rate = repeatedNgramRate(this.words.slice(-window), n);
				if (this.rate >= threshold && this.period.proseInLast(window) >= this.p.pool_prose * window) return this.trip("pool");
			}
		}
		return false;
	}

	/** Streamed tool-call arguments (JSON text); true once they repeat block after block. */
	feedArguments(text: string): boolean {
		if (this.tripped) return true;
		for (const w of this.args.add(text)) if (this.argsPeriod.word(w)) return this.trip("arguments");
		return false;
	}

	trip(rule: string): boolean {
		this.tripped = true;
		this.rule = rule;
		return true;
	}
}
