// Feed every stream of a vector file to harnesses/pi/extensions/lib/loopdetect.ts and print where it tripped,
// as JSON (tests/unit/test_loopdetect.py compares it with the Python detector's answers). Run with
// the jiti that pi installs: node <pi>/node_modules/jiti/lib/jiti-cli.mjs run_loopdetect.ts FILE
import { readFileSync } from "node:fs";
import { LoopDetector } from "../../pytest_tbreplay/harnesses/pi/extensions/lib/loopdetect.ts";

const vectors = JSON.parse(readFileSync(process.argv[process.argv.length - 1], "utf8"));
const results = vectors.cases.map((c: any) => {
	const d = new LoopDetector(vectors.params);
	let at: number | null = null;
	for (let i = 0; i < c.stream.length; i++) {
		const [kind, piece] = c.stream[i];
		if (kind === "t" ? d.feed(piece) : d.feedArguments(piece)) {
			at = i + 1;
			break;
		}
	}
	return { tripped_at: at, rule: d.rule, words: [d.text.pos, d.args.pos],
		lag: [d.text.lag, d.args.lag, d.text.wlag, d.args.wlag] };
});
process.stdout.write(JSON.stringify(results) + "\n");
