// Tool replay: pi's read/bash/edit/write, registered again under the same names with pi's own
// descriptions and schemas (so the tools and system prompt pi sends are unchanged), but execute()
// returns the result the cassette recorded for that tool call id, if the call is the recorded one:
// a call whose name or arguments differ (a write cut elsewhere, another path) is a replay
// divergence (tools.CassetteTools): logged for the pi harness, which fails the trial with a diff. Nothing
// recorded ever runs.
// It also logs each chat payload pi sends: the trial's record of its requests.
import {
	createBashToolDefinition,
	createEditToolDefinition,
	createReadToolDefinition,
	createWriteToolDefinition,
} from "@mariozechner/pi-coding-agent";
import { readFileSync } from "node:fs";
import { config, log } from "./lib/common.ts";

/** JSON with sorted keys: arguments compare as values, whatever the key order. */
function canonical(v: any): string {
	if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
	if (v && typeof v === "object")
		return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(",")}}`;
	return JSON.stringify(v);
}

export default function (pi: any) {
	// Read per session, not at import: pi >= 1.x imports the module once and calls this for each session.
	const results: Record<string, { name: string; arguments: any; output: string; is_error: boolean }> = JSON.parse(
		readFileSync(config.tool_results, "utf8"),
	);
	const cwd = process.cwd();
	for (const make of [createReadToolDefinition, createBashToolDefinition, createEditToolDefinition, createWriteToolDefinition]) {
		const builtin = make(cwd);
		pi.registerTool({
			...builtin,
			async execute(toolCallId: string, params: unknown) {
				const r = results[toolCallId];
				if (!r) {
					log("tool_missing", { id: toolCallId, name: builtin.name, params });
					throw new Error(`tbreplay: no recorded result for tool call ${toolCallId}; replay does not run commands`);
				}
				if (r.name !== builtin.name || canonical(r.arguments) !== canonical(params)) {
					log("tool_diverged", { id: toolCallId, name: builtin.name, params, recorded_name: r.name, recorded: r.arguments });
					throw new Error(`tbreplay: tool call ${toolCallId} differs from the recorded call; replay stops here`);
				}
				if (r.is_error) throw new Error(r.output); // pi turns a throw into an isError result
				return { content: [{ type: "text", text: r.output }], details: undefined };
			},
		});
	}
	pi.on("before_provider_request", (e: any) => {
		log("request", { body: e.payload });
	});
}
