// (j) The stuck-turn guard: pytest_tbreplay/policies/stuck.py ported line for line (see there for the
// rules). tests/data/stuck_cases.json holds the vectors both must decide alike.

export type Step = { calls: [string, string][]; results: [boolean, string][] };

/** Arguments as one string, key order ignored (stuck.py canonical). Only compared within one
 * trial, never with Python's string. */
export function canonical(value: any): string {
	if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
	if (value && typeof value === "object") {
		const keys = Object.keys(value).sort();
		return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
	}
	return JSON.stringify(value ?? null);
}

export function stepOf(calls: [string, any, string, boolean][]): Step {
	return { calls: calls.map(([n, a]) => [n, canonical(a)]), results: calls.map(([, , o, e]) => [!!e, o]) };
}

const same = (a: any, b: any) => JSON.stringify(a) === JSON.stringify(b);
const failed = (s: Step) => s.results.length > 0 && s.results.every(([e]) => e);

function short(args: string): string {
	let value: any = args;
	try { value = JSON.parse(args); } catch { /* not JSON: as it is */ }
	const text = value && typeof value === "object" && typeof value.command === "string" ? value.command : args;
	// Python slices code points: so does this.
	const chars = [...text];
	return chars.length <= 80 ? text : chars.slice(0, 77).join("") + "...";
}

function describe(s: Step): string {
	return s.calls.map(([n, a]) => `\`${n} ${short(a)}\``).join(" and ");
}

export class StuckGuard {
	repeats: number; alternation: number; afterNudge: number;
	steps: Step[] = [];
	nudged = false;
	stuckSinceNudge = 0;
	rule: string | null = null;
	what = "";

	constructor(config: { repeats: number; alternation: number; after_nudge: number }) {
		this.repeats = config.repeats;
		this.alternation = config.alternation;
		this.afterNudge = config.after_nudge;
	}

	observe(step: Step): "nudge" | "stop" | null {
		this.steps.push(step);
		if (this.steps.length > Math.max(this.repeats, 2 * this.alternation)) this.steps.shift(); // bounded
		const rule = this.stuck();
		if (rule === null) {
			this.stuckSinceNudge = 0;
			return null;
		}
		this.rule = rule;
		this.what = this.describeRule(rule);
		if (!this.nudged) {
			this.nudged = true;
			return "nudge";
		}
		this.stuckSinceNudge++;
		return this.stuckSinceNudge >= this.afterNudge ? "stop" : null;
	}

	private stuck(): string | null {
		const s = this.steps;
		if (s.length >= this.repeats) {
			const last = s.slice(-this.repeats);
			if (last.every((x) => same(x.calls, last[0].calls))) {
				if (last.every((x) => same(x.results, last[0].results))) return "repeat";
				if (last.every(failed)) return "error";
			}
		}
		const n = 2 * this.alternation;
		if (s.length >= n) {
			const last = s.slice(-n);
			if (!same(last[0], last[1]) && last.every((x, i) => same(x, last[i % 2]))) return "alternation";
		}
		return null;
	}

	private describeRule(rule: string): string {
		const s = this.steps;
		if (rule === "alternation") return `${describe(s[s.length - 2])} then ${describe(s[s.length - 1])}, alternating,`;
		return describe(s[s.length - 1]);
	}

	private count(): number {
		return this.rule === "alternation" ? 2 * this.alternation : this.repeats;
	}

	/** The nudge or stop text (config.stuck_nudge / stuck_stop, stuck.py's templates); a function
	 * replacer, since a command may hold `$&`. */
	text(template: string): string {
		return template.replace("{n}", String(this.count())).replace("{what}", () => this.what);
	}
}
