// What both compactions share (reference.Run.compact): the conversation serialized for the summary
// request, the request itself, and the part of a summary that is never the model's: the task
// instruction verbatim always, and with anchored_summary the acceptance criteria and the files
// produced so far (reference.anchor). Not an extension: a module the compactions import.
import { convertToLlm } from "@mariozechner/pi-coding-agent";
import { config, log, state } from "./common.ts";

export const PREFIX: Record<string, string> = { user: "user", assistant: "assistant", toolResult: "tool" };

function cutResult(text: string): string {
	return text.length > config.tool_result_cut
		? `${text.slice(0, config.tool_result_cut)}\n... (${text.length - config.tool_result_cut} more chars)`
		: text;
}

/** A pi session message as harness._serialize writes it. */
export function serialize(m: any): string {
	let text = (m.content ?? []).filter((c: any) => c.type === "text").map((c: any) => c.text).join("");
	if (m.role === "toolResult") text = cutResult(text);
	const calls = (m.content ?? [])
		.filter((c: any) => c.type === "toolCall")
		.map((c: any) => `\n[tool call ${c.name}: ${JSON.stringify(c.arguments).slice(0, 500)}]`)
		.join("");
	return `[${PREFIX[m.role] ?? m.role}]: ${text}${calls}`;
}

/** A chat (wire) message of a payload as harness._serialize writes it. */
export function serializeWire(m: any): string {
	let text = typeof m.content === "string" ? m.content
		: (m.content ?? []).filter((c: any) => c.type === "text").map((c: any) => c.text).join("");
	if (m.role === "tool") text = cutResult(text);
	const calls = (m.tool_calls ?? [])
		.map((c: any) => `\n[tool call ${c.function.name}: ${String(c.function.arguments).slice(0, 500)}]`)
		.join("");
	return `[${m.role}]: ${text}${calls}`;
}

/** reference.anchor: what a summary starts with, verbatim. */
export function anchor(): string {
	let text = `## Original task (verbatim)\n${config.task.instruction}`;
	if (config.anchored_summary) {
		const criteria = config.task.acceptance.map((c: string) => `- ${c}`).join("\n") || "- (see the task)";
		const files = state.gate.artifacts.map((f) => `- ${f}`).join("\n") || "- (none yet)";
		text += `\n\n## Acceptance criteria\n${criteria}\n\n## Files written so far\n${files}`;
	}
	return text;
}

/** The model's summary of `conversation`, asked from the server as reference.Run.compact does,
 * with the anchor in front. */
export async function summarize(conversation: string, signal?: AbortSignal): Promise<string> {
	const body = {
		model: config.model,
		messages: [
			{ role: "system", content: config.summary_system },
			{ role: "user", content: `<conversation>\n${conversation}\n</conversation>\n\n${config.summary_ask}` },
		],
		stream: true,
		max_tokens: config.summary_tokens,
		...(config.dry ?? {}),
	};
	log("request", { body });
	const resp = await fetch(`${config.base_url}/chat/completions`, {
		method: "POST",
		headers: { "content-type": "application/json", authorization: "Bearer none" },
		body: JSON.stringify(body),
		signal,
	});
	if (!resp.ok) throw new Error(`summary request failed: ${resp.status} ${(await resp.text()).slice(0, 300)}`);
	return `${anchor()}\n\n${readAnswer(await resp.text())}`;
}

/** The summary text from a plain JSON answer or from an SSE stream (a cassette may hold either). */
function readAnswer(raw: string): string {
	if (!raw.trimStart().startsWith("data:")) return JSON.parse(raw).choices[0].message.content ?? "";
	let text = "";
	for (const line of raw.split("\n")) {
		if (!line.startsWith("data:") || line.includes("[DONE]")) continue;
		for (const c of JSON.parse(line.slice(5)).choices ?? []) text += c.delta?.content ?? "";
	}
	return text;
}

/** The summary as pi itself sends a compaction summary (messages.js convertToLlm), on the wire as
 * pi-ai sends a text-only user message. */
export function summaryMessage(summary: string): any {
	const [m] = convertToLlm([{ role: "compactionSummary", summary, tokensBefore: 0, timestamp: Date.now() }]);
	return { role: "user", content: m.content.map((c: any) => ({ type: "text", text: c.text })) };
}
