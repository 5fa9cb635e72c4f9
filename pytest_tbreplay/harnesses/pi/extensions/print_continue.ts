// Print mode's stand-in for the pi harness's RPC driver (used by the Harbor agent): print mode ends when
// its prompts are answered, so the command line carries spare prompts `__PI_NEXT__` (print-mode.js
// awaits each in turn). This `input` handler holds each one until pi has settled, then turns it
// into the message an extension asked for, or swallows it. "Settled" waits out what may follow a
// run: a compaction, and after an overflow compaction pi's retry (agent.continue() 100 ms later);
// while a prompt is held pi is still subscribed, so all of it is printed (NOTES, runs/f4).
import { config, lastAssistant, state } from "./lib/common.ts";

const PLACEHOLDER = "__PI_NEXT__";
const QUIET_MS = 300;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export default function (pi: any) {
	let compacting = false, retryExpected = false, lastRunFailed = false, lastEventAt = Date.now();
	const touch = () => { lastEventAt = Date.now(); };
	pi.on("agent_start", () => { retryExpected = false; touch(); });
	pi.on("turn_end", touch);
	pi.on("agent_end", (e: any) => { lastRunFailed = lastAssistant(e.messages)?.stopReason === "error"; touch(); });
	// Loaded before auto_compaction.ts (harbor.py), so this runs before its summary request; a compaction
	// it will cancel (a kind the profile does not want) is not waited for.
	pi.on("session_before_compact", () => {
		compacting = lastRunFailed ? config.overflow_retry : config.proactive_compaction;
		touch();
	});
	pi.on("session_compact", () => { compacting = false; retryExpected = lastRunFailed; touch(); });
	pi.on("input", async (e: any, ctx: any) => {
		if (e.text !== PLACEHOLDER) return { action: "continue" };
		const deadline = Date.now() + config.settle_timeout_ms;
		// A declined compaction never reaches session_compact: nothing to wait for then.
		const pending = () => compacting && !state.compactionCancelled;
		while (Date.now() < deadline && (pending() || retryExpected || !ctx.isIdle() || Date.now() - lastEventAt < QUIET_MS)) {
			await sleep(50);
		}
		const text = state.next.shift();
		return text ? { action: "transform", text } : { action: "handled" };
	});
}
