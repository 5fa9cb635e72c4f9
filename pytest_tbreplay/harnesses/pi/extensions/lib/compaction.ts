// policies/compaction.py, line for line: the conversation as the summary request sees it, and the
// anchor a summary starts with. Plain functions, no pi imports: tests/vectors/run_compaction.ts
// runs them against tests/vectors/compaction.json, which the Python module wrote.

export const TOOL_RESULT_CUT = 2000; // pi cuts tool results to 2000 chars in what it summarizes
export const CALL_ARGUMENTS_CUT = 500; // and a tool call's arguments to 500

export function cutResult(text: string): string {
	return text.length > TOOL_RESULT_CUT
		? `${text.slice(0, TOOL_RESULT_CUT)}\n... (${text.length - TOOL_RESULT_CUT} more chars)`
		: text;
}

/** One chat (wire) message as the summary request shows it (compaction.serialize). */
export function serializeWire(m: any): string {
	let text = typeof m.content === "string" ? m.content
		: (m.content ?? []).filter((c: any) => c?.type === "text").map((c: any) => c.text ?? "").join("");
	if (m.role === "tool") text = cutResult(text);
	const calls = (m.tool_calls ?? [])
		.map((c: any) => `\n[tool call ${c.function.name}: ${String(c.function.arguments).slice(0, CALL_ARGUMENTS_CUT)}]`)
		.join("");
	return `[${m.role}]: ${text}${calls}`;
}

/** What a summary starts with, verbatim (compaction.anchor). */
export function anchorText(instruction: string, acceptance: string[], files: string[], anchored: boolean): string {
	let text = `## Original task (verbatim)\n${instruction}`;
	if (anchored) {
		const criteria = acceptance.map((c) => `- ${c}`).join("\n") || "- (see the task)";
		const written = files.map((f) => `- ${f}`).join("\n") || "- (none yet)";
		text += `\n\n## Acceptance criteria\n${criteria}\n\n## Files written so far\n${written}`;
	}
	return text;
}
