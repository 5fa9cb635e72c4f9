// Runs harnesses/pi/extensions/lib/stuck.ts (through jiti, as pi loads extensions) on
// tests/data/stuck_cases.json and prints its verdicts and texts: test_stuck.py compares them with stuck.py's.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const [stuckPath, casesPath, piDir] = process.argv.slice(2);
const { createJiti } = createRequire(`${piDir}/`)("jiti");
const jiti = createJiti(import.meta.url);
const { StuckGuard, stepOf } = await jiti.import(stuckPath);
const data = JSON.parse(readFileSync(casesPath, "utf8"));
const out = data.cases.map((c) => {
	const guard = new StuckGuard(c.config);
	const verdicts = [], texts = [];
	for (const step of c.steps) {
		const v = guard.observe(stepOf(step));
		verdicts.push(v);
		texts.push(v ? guard.text(v === "nudge" ? data.nudge : data.stop) : null);
	}
	return { verdicts, texts };
});
console.log(JSON.stringify(out));
