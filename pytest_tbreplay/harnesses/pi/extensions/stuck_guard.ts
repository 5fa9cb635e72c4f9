// (j) The stuck-turn guard (reference.StuckTurns): each turn's tool calls with their results go to
// lib/stuck.ts (policies/stuck.py ported). The first time the trial is stuck the nudge is queued
// as a steering message (pi delivers it after this turn's tool results, before the next request:
// the same place the reference harness puts it); stuck again after the nudge, the run is aborted
// and the stop logged, so the pi harness ends the trial `stuck` (an aborted signal ends pi's run
// before its next request is sent).
// Decided in tool_result, which pi awaits before the turn ends (agent-loop afterToolCall): the
// turn_end event may reach extensions after pi already took the steering queue.
import { config, log, on } from "./lib/common.ts";
import { StuckGuard, stepOf } from "./lib/stuck.ts";

export default function (pi: any) {
	if (!on("stuck_guard.ts")) return;
	const guard = new StuckGuard(config.stuck_guard);
	let calls: any[] = [];
	let results = new Map<string, [string, any, string, boolean]>();
	// message_end of the assistant message comes before its tools run (length_nudge.ts relies on it too).
	pi.on("message_end", (e: any) => {
		if (e.message.role !== "assistant") return;
		calls = (e.message.content ?? []).filter((c: any) => c.type === "toolCall");
		results = new Map();
	});
	pi.on("tool_result", async (e: any, ctx: any) => {
		const text = (e.content ?? []).filter((p: any) => p.type === "text").map((p: any) => p.text).join("");
		results.set(e.toolCallId, [e.toolName, e.input ?? {}, text, !!e.isError]);
		if (!calls.length || calls.some((c) => !results.has(c.id))) return undefined;
		const verdict = guard.observe(stepOf(calls.map((c) => results.get(c.id)!)));
		calls = [];
		if (verdict === "nudge") {
			const nudge = guard.text(config.stuck_nudge);
			log("stuck_nudge", { text: nudge });
			await pi.sendUserMessage(nudge, { deliverAs: "steer" });
		} else if (verdict === "stop") {
			log("stuck", { text: guard.text(config.stuck_stop), rule: guard.rule });
			ctx.abort();
		}
		return undefined;
	});
}
