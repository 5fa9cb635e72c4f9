// (e) A length stop must not end the trial silently (reference.LengthNudge):
// - a text cut: pi ends its run on a "length" message without tool calls, so ask for the nudge
//   (reference.NUDGE) as the next user message;
// - a tool call cut mid-arguments: pi would run what its streaming JSON parser made of the cut
//   arguments (agent-loop.js runs the tool calls of any message that is not error/aborted). The
//   tool_call hook blocks it instead; the block reason becomes the call's (error) result, telling
//   the model where it was cut and to write large files in parts (tools.cut_call_message).
//   pi >= 0.84 runs none of a length message's calls itself (pi-agent-core agent-loop.js
//   failToolCallsFromTruncatedMessage: an error result "Tool call ... was not executed: the response
//   hit the output token limit ...", and tool_call never fires); there the cut call's result
//   message is replaced at message_end (same role) by the same text, so the model is told the same
//   thing on both pis.
import { config, lastAssistant, log, on, queueNext, state } from "./lib/common.ts";

/** `limit`: the max tokens the cut message had (its output tokens): the profile's, or less where
 * pi >= 0.75 lowered it to fit its window. */
function cutCallMessage(name: string, args: any, limit: number): string {
	let where = "";
	const content = typeof args?.content === "string" ? args.content : args?.command;
	if (typeof content === "string") {
		const what = args?.path ? `${args.path} would have got` : "the command would have had";
		// Python's len() counts code points, JS's length UTF-16 units: count code points.
		const n = [...content].length;
		const tail = [...content].slice(-60).join("");
		where = `: ${what} only the first ${n} characters (line ${content.split("\n").length}), ending with ${JSON.stringify(tail)}`;
	}
	return config.cut_call.replaceAll("{max_tokens}", String(limit)).replace("{name}", name).replace("{where}", where);
}

/** What the model had written of a cut call's arguments. pi >= 0.84 parses the finished stream
 * strictly: a cut call has `arguments: {}` and the text it got in `argumentsError` (after
 * "Received arguments:"); closing its open string and object gives what 0.73.1's streaming parser
 * handed tool_call. */
function cutArguments(call: any): any {
	if (Object.keys(call.arguments ?? {}).length || typeof call.argumentsError !== "string") return call.arguments;
	const marker = "Received arguments:\n";
	const at = call.argumentsError.indexOf(marker);
	if (at < 0) return call.arguments;
	// An escape the cut split in two is dropped: a trailing lone backslash, a partial \uXXXX.
	const raw = call.argumentsError.slice(at + marker.length).replace(/\\u[0-9a-fA-F]{0,3}$/, "").replace(/(^|[^\\])((\\\\)*)\\$/, "$1$2");
	for (const end of ['"}', "}", '""}']) {
		try {
			return JSON.parse(raw + end);
		} catch {
			// try the next way to close it
		}
	}
	return call.arguments;
}

export default function (pi: any) {
	if (!on("length_nudge.ts")) return;
	let cutCallId: string | null = null;
	let cutCall: any = null;
	let cutLimit = 0;
	// tool_call is emitted after pi's agent event queue drained (agent-session.js beforeToolCall
	// awaits it), so the message_end of the message holding the call has been seen.
	pi.on("message_end", (e: any) => {
		const m = e.message;
		if (m.role !== "assistant") return;
		const calls = (m.content ?? []).filter((c: any) => c.type === "toolCall");
		cutCall = m.stopReason === "length" && calls.length ? calls[calls.length - 1] : null;
		cutCallId = cutCall?.id ?? null;
		cutLimit = m.usage?.output || config.max_tokens;
	});
	pi.on("tool_call", (e: any) => {
		if (e.toolCallId !== cutCallId) return undefined;
		const text = cutCallMessage(e.toolName, e.input, cutLimit);
		log("cut_call", { id: e.toolCallId, text });
		cutCallId = null; // blocked (pi 0.73.1): its result message needs no replacing
		return { block: true, reason: text };
	});
	pi.on("message_end", (e: any) => {
		const m = e.message;
		if (m.role !== "toolResult" || m.toolCallId !== cutCallId || !cutCall) return undefined;
		const text = cutCallMessage(cutCall.name, cutArguments(cutCall), cutLimit);
		log("cut_call", { id: m.toolCallId, text });
		cutCallId = null;
		return { message: { ...m, content: [{ type: "text", text }], isError: true } };
	});
	pi.on("agent_end", (e: any) => {
		const last = lastAssistant(e.messages);
		const hasTools = last?.content?.some((c: any) => c.type === "toolCall");
		if (last?.stopReason === "length" && !hasTools && state.nudges < config.max_nudges) {
			state.nudges++;
			queueNext(config.nudge, "nudge");
		}
	});
}
