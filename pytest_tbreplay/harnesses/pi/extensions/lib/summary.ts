// What both compactions share (reference.Run.compact): the conversation serialized for the summary
// request, the request itself, and the anchor a summary starts with (the pure parts, shared with
// Python through test vectors, are compaction.ts). Not an extension: a module the compactions import.
import { convertToLlm } from "@mariozechner/pi-coding-agent";
import { config, log, state } from "./common.ts";
import { CALL_ARGUMENTS_CUT, anchorText, cutResult, serializeWire } from "./compaction.ts";

export { serializeWire };

export const PREFIX: Record<string, string> = { user: "user", assistant: "assistant", toolResult: "tool" };

/** A pi session message as compaction.serialize writes its wire form. */
export function serialize(m: any): string {
	let text = (m.content ?? []).filter((c: any) => c.type === "text").map((c: any) => c.text).join("");
	if (m.role === "toolResult") text = cutResult(text);
	const calls = (m.content ?? [])
		.filter((c: any) => c.type === "toolCall")
		.map((c: any) => `\n[tool call ${c.name}: ${JSON.stringify(c.arguments).slice(0, CALL_ARGUMENTS_CUT)}]`)
		.join("");
	return `[${PREFIX[m.role] ?? m.role}]: ${text}${calls}`;
}

/** What this trial's summaries start with (compaction.anchor). */
export function anchor(): string {
	return anchorText(config.task.instruction, config.task.acceptance, state.gate.artifacts, !!config.anchored_summary);
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
