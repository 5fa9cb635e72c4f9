// (d) The streaming loop guard: loopdetect.ts (pytest_tbreplay/policies/loopdetect.py ported) over the
// streamed text, reasoning and tool-call arguments of each assistant message. When it trips it
// aborts the stream (ctx.abort(): the message ends "aborted", pi drops it from later requests and
// runs none of its tool calls) and asks for the nudge. An aborted run gets no follow-up from pi
// itself, hence the driver.
import { config, lastAssistant, log, on, queueNext, state } from "./lib/common.ts";
import { LoopDetector } from "./lib/loopdetect.ts";

// The streamed-token events, counted as harnesses/pi/events.py counts them.
const TOKEN_EVENTS = new Set(["text_delta", "thinking_delta", "toolcall_delta"]);

export default function (pi: any) {
	if (!on("loop_detector.ts")) return;
	let detector = new LoopDetector(config.loop);
	let tokens = 0; // token events of this message: where the guard tripped, whatever arrives after
	let cutThisRun = false;
	pi.on("message_start", (e: any) => {
		if (e.message.role !== "assistant") return;
		state.assistantMessages++;
		detector = new LoopDetector(config.loop);
		tokens = 0;
	});
	pi.on("message_update", (e: any, ctx: any) => {
		const ev = e.assistantMessageEvent;
		if (detector.tripped || !TOKEN_EVENTS.has(ev.type)) return;
		tokens++;
		if (!ev.delta) return;
		const tripped = ev.type === "toolcall_delta" ? detector.feedArguments(ev.delta) : detector.feed(ev.delta);
		if (tripped) {
			cutThisRun = true;
			log("cut", { message: state.assistantMessages - 1, rule: detector.rule, tokens });
			ctx.abort();
		}
	});
	pi.on("agent_end", (e: any) => {
		const cut = cutThisRun && lastAssistant(e.messages)?.stopReason === "aborted";
		cutThisRun = false;
		if (cut && state.nudges < config.max_nudges) {
			state.nudges++;
			queueNext(config.nudge, "nudge");
		}
	});
}
