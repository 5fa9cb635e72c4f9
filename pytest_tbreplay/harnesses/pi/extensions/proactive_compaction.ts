// (a) Proactive compaction inside a run, as reference.ProactiveCompaction does before each request,
// for pi < 0.84.4 (launch.pi_compacts_in_run: a newer pi does it itself).
// pi 0.73.1 checks its threshold only after a run (agent-session.js _processAgentEvent on
// agent_end, and prompt()'s pre-check), so a one-run trial would grow into the server's 400.
// before_provider_request is awaited with the chat payload just before it goes out (pi-ai
// openai-completions.js onPayload) and may replace it: there the request is estimated
// (reference.Run.estimate), and when it plus a full turn (max tokens, counted once) would pass the
// window, the older messages are summarized and the payload sent is [system, pi's compaction
// summary message, the last complete step(s)]. pi's session keeps the whole history, so each later
// payload of the run gets the same compaction applied. Without a complete step to summarize (the
// first request) nothing is compacted: the task instruction is never summarized away.
import { config, lastAssistant, log, observe, on } from "./lib/common.ts";
import { serializeWire, summarize, summaryMessage } from "./lib/summary.ts";

/** harness._chars: the size of a request's messages and tools. */
function chars(messages: any[], tools: any): number {
	return JSON.stringify(messages).length + JSON.stringify(tools ?? []).length;
}

function leading(messages: any[]): number {
	let i = 0;
	while (i < messages.length && (messages[i].role === "system" || messages[i].role === "developer")) i++;
	return i;
}

export default function (pi: any) {
	if (!on("proactive_compaction.ts")) return;
	let charsPerToken = 4.0; // refined from each answer's prompt tokens, as reference.Run._send does
	let lastChars = 0; // size of the last payload sent
	let lastAnswerAt: number | null = null; // the answer the ratio was last taken from
	let requests = 0; // payloads sent so far: the trial's turn index of the next one
	let inRun: { summary: string; firstKept: string } | null = null; // applied to every later payload

	pi.on("tool_result", (e: any) => {
		observe(e); // the anchor lists produced files
	});
	pi.on("session_compact", () => {
		inRun = null; // pi compacted the session itself: its summary now leads the messages
	});
	// The context event is awaited before each request, with pi's messages: the last answer's usage
	// is there (message_end handlers are not awaited by the agent loop, so they may come late).
	// pi-ai splits prompt_tokens into input and cacheRead (openai-completions.js parseChunkUsage,
	// input = max(0, prompt - cached)); llama-server always evaluates at least one prompt token, so
	// input 0 means a cached count that is not this prompt's (a replayed usage whose recording had
	// the longer, uncompacted prompt cached): the ratio stays as it was.
	pi.on("context", (e: any) => {
		const last = lastAssistant(e.messages);
		const prompt = (last?.usage?.input ?? 0) + (last?.usage?.cacheRead ?? 0);
		if (last?.usage?.input > 0 && lastChars > 0 && last.timestamp !== lastAnswerAt) {
			charsPerToken = lastChars / prompt;
			lastAnswerAt = last.timestamp;
		}
	});
	pi.on("before_provider_request", async (e: any, ctx: any) => {
		const turn = requests++;
		const payload = e.payload;
		let messages = applyInRun(payload.messages);
		const estimate = Math.round(chars(messages, payload.tools) / charsPerToken);
		const window = ctx.model?.contextWindow;
		if (window && estimate + config.max_tokens > window) {
			const compacted = await compactPayload(messages, estimate, turn, ctx.signal);
			messages = compacted ?? messages;
		}
		lastChars = chars(messages, payload.tools);
		return messages === payload.messages ? undefined : { ...payload, messages };
	});

	/** The payload's messages with this run's compaction applied: the messages before the first
	 * kept one give way to the summary. */
	function applyInRun(messages: any[]): any[] {
		if (!inRun) return messages;
		const head = leading(messages);
		const kept = messages.findIndex((m, i) => i >= head && JSON.stringify(m) === inRun!.firstKept);
		if (kept < 0) {
			inRun = null; // the kept messages are gone: pi compacted meanwhile
			return messages;
		}
		return [...messages.slice(0, head), summaryMessage(inRun.summary), ...messages.slice(kept)];
	}

	async function compactPayload(messages: any[], tokensBefore: number, turn: number, signal?: AbortSignal) {
		const head = leading(messages);
		const cut = cutPoint(messages, head);
		const older = messages.slice(head, cut);
		if (!older.some((m) => m.role === "assistant")) return null; // no complete step to summarize
		const summary = await summarize(older.map(serializeWire).join("\n\n"), signal);
		log("compaction", { reason: "threshold", tokens_before: tokensBefore, summary, turn });
		inRun = { summary, firstKept: JSON.stringify(messages[cut]) };
		return [...messages.slice(0, head), summaryMessage(summary), ...messages.slice(cut)];
	}

	/** harness._cut_point on the payload: the newest messages worth keep_recent_tokens, starting at
	 * an assistant message so no tool result loses its call; at least the last step. */
	function cutPoint(messages: any[], head: number): number {
		let kept = 0, cut = messages.length;
		for (let i = messages.length - 1; i > head; i--) {
			kept += JSON.stringify(messages[i]).length / charsPerToken;
			if (messages[i].role === "assistant") {
				cut = i;
				if (kept >= config.keep_recent_tokens) break;
			}
		}
		return cut;
	}
}
