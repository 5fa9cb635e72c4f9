// Runs harnesses/pi/extensions/lib/gate.ts (through jiti, as pi loads extensions) on tests/data/verify_cases.json
// and prints what it decided, one JSON object per case: test_verify.py compares it with verify.py.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const [gatePath, rulesPath, casesPath, successPattern, piDir] = process.argv.slice(2);
const { createJiti } = createRequire(`${piDir}/`)("jiti"); // the jiti pi itself loads extensions with
const jiti = createJiti(import.meta.url);
const { VerifyGate } = await jiti.import(gatePath);
const rules = JSON.parse(readFileSync(rulesPath, "utf8"));
const out = [];
for (const c of JSON.parse(readFileSync(casesPath, "utf8"))) {
	const gate = new VerifyGate(rules, successPattern);
	const checked = c.calls.map(([name, args, output, isError]) => gate.observe(name, args, output, isError));
	out.push({ armed: [...gate.armed.keys()].sort(), checked, demand: gate.demand(c.claim, c.criteria ?? ["crit A", "crit B"]) });
}
console.log(JSON.stringify(out));
