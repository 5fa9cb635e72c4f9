// (a)/(c) A full turn in every request, on pi >= 0.75 with proactive compaction. That pi lowers each
// request's max tokens to what its estimate of the context leaves of the window minus a safety
// margin of max(4096, 15% of the input), down to 1 token (pi-ai simple-options.js
// clampMaxTokensToContext; no setting turns it off). With proactive compaction pi compacts once
// its estimate passes window - reserveTokens (= max tokens), and the window already leaves
// headroom below n_ctx: the turn fits, so the request gets the profile's max tokens back and the
// model is never asked for a 1-token answer. Without proactive compaction pi's lowering stands
// (tests/proofs assert what it does then).
import { config, on } from "./lib/common.ts";

export default function (pi: any) {
	if (!on("full_turn.ts")) return;
	pi.on("before_provider_request", (e: any) => {
		const payload = e.payload;
		const key = "max_completion_tokens" in payload ? "max_completion_tokens" : "max_tokens";
		if (!(payload[key] < config.max_tokens)) return undefined;
		return { ...payload, [key]: config.max_tokens };
	});
}
