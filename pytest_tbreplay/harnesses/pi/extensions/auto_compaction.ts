// (a)/(b)/(g) pi's own auto-compaction (between runs, and after an overflow 400), shaped by the
// profile:
// - pi has one switch for both kinds (settings compaction.enabled), so a profile that wants only
//   one kind cancels the other here;
// - the summary is asked from the server like reference.Run.compact does, and starts with the task
//   instruction verbatim (and with anchored_summary the criteria and files: summary.ts anchor);
// - the last complete step is always kept (harness._cut_point). pi's own cut point keeps nothing
//   when that step alone passes keepRecentTokens: after an overflow, compaction.js findCutPoint
//   settles on the failed (error) message, which agent-session.js then drops, so pi's "retry" is
//   the summary alone and the model loses the output it was reacting to;
// - with no complete step to summarize (before the first answer) it cancels: summarizing the task
//   alone would only replace the instruction.
// Compaction inside a run, before a request that would pass the window, is proactive_compaction.ts.
import { config, lastAssistant, log, observe, on, state } from "./lib/common.ts";
import { PREFIX, serialize, summarize } from "./lib/summary.ts";

/** The messages to summarize and the first kept entry: pi's cut, or earlier so that the last
 * assistant message that did not fail (and its tool results) stays. */
function cutAtLastStep(entries: any[], piFirstKept: string): { older: any[]; firstKeptEntryId: string } {
	const isMessage = (e: any) => e.type === "message";
	const lastCompaction = entries.map((e) => e.type).lastIndexOf("compaction");
	const boundary = lastCompaction < 0 ? 0 : Math.max(0, entries.findIndex((e) => e.id === entries[lastCompaction].firstKeptEntryId));
	const piCut = entries.findIndex((e) => e.id === piFirstKept);
	let cut = piCut < 0 ? entries.length - 1 : piCut;
	for (let i = entries.length - 1; i > boundary; i--) {
		const m = entries[i].message;
		if (isMessage(entries[i]) && m.role === "assistant" && m.stopReason !== "error" && m.stopReason !== "aborted") {
			cut = Math.min(cut, i);
			break;
		}
	}
	// pi >= 1.0 keeps its prompt as role "system" message entries: never summarized.
	const older = entries.slice(boundary, cut).filter(isMessage).map((e) => e.message).filter((m) => m.role !== "system");
	return { older, firstKeptEntryId: entries[cut].id };
}

export default function (pi: any) {
	if (!on("auto_compaction.ts")) return;
	let lastRunFailed = false;
	// The anchor lists produced files: the gate books each finished tool call once.
	pi.on("tool_result", (e: any) => {
		observe(e);
	});
	pi.on("agent_end", (e: any) => {
		lastRunFailed = lastAssistant(e.messages)?.stopReason === "error";
	});
	pi.on("session_before_compact", async (e: any) => {
		// pi >= 0.84 names the kind (its recovery after an early length stop is "overflow" too);
		// 0.73.1 compacts right after a failed run only on a context overflow (agent-session.js
		// _checkCompaction), and every other compaction is the threshold kind.
		const reason = e.reason ?? (lastRunFailed ? "overflow" : "threshold");
		if (reason === "manual") return undefined;
		const wanted = reason === "overflow" ? config.overflow_retry : config.proactive_compaction;
		state.compactionCancelled = false; // set below when declined: print_continue.ts stops waiting
		if (!wanted) {
			log("compaction_cancelled", { reason });
			state.compactionCancelled = true;
			return { cancel: true };
		}
		const p = e.preparation;
		const { older, firstKeptEntryId } = cutAtLastStep(e.branchEntries, p.firstKeptEntryId);
		if (!older.some((m) => m.role === "assistant")) {
			log("compaction_cancelled", { reason, why: "no complete step to summarize" });
			state.compactionCancelled = true;
			return { cancel: true };
		}
		if (p.previousSummary) older.unshift({ role: "user", content: [{ type: "text", text: p.previousSummary }] });
		const summary = await summarize(older.filter((m) => PREFIX[m.role]).map(serialize).join("\n\n"), e.signal);
		return { compaction: { summary, firstKeptEntryId, tokensBefore: p.tokensBefore, details: { tbreplay: true } } };
	});
}
