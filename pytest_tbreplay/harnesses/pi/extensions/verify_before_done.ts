// (f) Verify before done (reference.VerifyBeforeDone): the contract goes into the system prompt, and
// a finish that claims success while the gate (gate.ts, policies/gate.py's rules) holds output nothing
// has checked is sent back, naming those artifacts and quoting the acceptance criteria.
import { config, lastAssistant, observe, on, queueNext, state, textOf } from "./lib/common.ts";

export default function (pi: any) {
	if (!on("verify_before_done.ts")) return;
	let demands = 0;
	pi.on("before_agent_start", (e: any) => ({ systemPrompt: `${e.systemPrompt}\n\n${config.verify_contract}` }));
	// tool_result is awaited after the tool ran, with its output: the gate is current when the run ends.
	pi.on("tool_result", (e: any) => {
		observe(e);
	});
	pi.on("agent_end", (e: any) => {
		const last = lastAssistant(e.messages);
		if (last?.stopReason !== "stop" || last.content.some((c: any) => c.type === "toolCall")) return;
		if (demands >= config.max_verify_demands) return;
		const demand = state.gate.demand(textOf(last), config.task.acceptance);
		if (demand) {
			demands++;
			queueNext(demand, "verify_demand");
		}
	});
}
