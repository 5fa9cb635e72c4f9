// Run harnesses/pi/extensions/lib/compaction.ts on tests/vectors/compaction.json and print its
// answers as JSON (tests/unit/test_compaction.py compares them with Python's). Run with the jiti
// that pi installs: node <pi>/node_modules/jiti/lib/jiti-cli.mjs run_compaction.ts FILE
import { readFileSync } from "node:fs";
import {
	CALL_ARGUMENTS_CUT,
	TOOL_RESULT_CUT,
	anchorText,
	serializeWire,
} from "../../pytest_tbreplay/harnesses/pi/extensions/lib/compaction.ts";

const vectors = JSON.parse(readFileSync(process.argv[process.argv.length - 1], "utf8"));
process.stdout.write(JSON.stringify({
	tool_result_cut: TOOL_RESULT_CUT,
	call_arguments_cut: CALL_ARGUMENTS_CUT,
	serialize: vectors.serialize.map((c: any) => serializeWire(c.message)),
	anchor: vectors.anchor.map((c: any) => anchorText(c.args[0], c.args[1], c.args[2], c.args[3])),
}) + "\n");
