// (e) A length stop must not end the trial silently (reference.LengthNudge):
// - a text cut: pi ends its run on a "length" message without tool calls, so ask for the nudge
//   (reference.NUDGE) as the next user message;
// - a tool call cut mid-arguments: pi would run what its streaming JSON parser made of the cut
//   arguments (agent-loop.js runs the tool calls of any message that is not error/aborted). The
//   tool_call hook blocks it instead; the block reason becomes the call's (error) result, telling
//   the model where it was cut and to write large files in parts (tools.cut_call_message).
import { config, lastAssistant, log, on, queueNext, state } from "./lib/common.ts";

function cutCallMessage(name: string, args: any): string {
	let where = "";
	const content = typeof args?.content === "string" ? args.content : args?.command;
	if (typeof content === "string") {
		const what = args?.path ? `${args.path} would have got` : "the command would have had";
		// Python's len() counts code points, JS's length UTF-16 units: count code points.
		const n = [...content].length;
		const tail = [...content].slice(-60).join("");
		where = `: ${what} only the first ${n} characters (line ${content.split("\n").length}), ending with ${JSON.stringify(tail)}`;
	}
	return config.cut_call.replaceAll("{max_tokens}", String(config.max_tokens)).replace("{name}", name).replace("{where}", where);
}

export default function (pi: any) {
	if (!on("length_nudge.ts")) return;
	let cutCallId: string | null = null;
	// tool_call is emitted after pi's agent event queue drained (agent-session.js beforeToolCall
	// awaits it), so the message_end of the message holding the call has been seen.
	pi.on("message_end", (e: any) => {
		const m = e.message;
		if (m.role !== "assistant") return;
		const calls = (m.content ?? []).filter((c: any) => c.type === "toolCall");
		cutCallId = m.stopReason === "length" && calls.length ? calls[calls.length - 1].id : null;
	});
	pi.on("tool_call", (e: any) => {
		if (e.toolCallId !== cutCallId) return undefined;
		const text = cutCallMessage(e.toolName, e.input);
		log("cut_call", { id: e.toolCallId, text });
		return { block: true, reason: text };
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
