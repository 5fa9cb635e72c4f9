// For `tbreplay import` (Harbor trials of MitigatedPi): the non-message part of the first chat
// request pi sends — system prompt, tools, max_completion_tokens, sampling and DRY fields, stream
// options — so every request of the trial can be rebuilt exactly from the session's messages.
// Loaded last, so before_provider_request hands it the payload as the other extensions left it.
// Written once, atomically (tmp + rename); it never changes the payload.
import { renameSync, writeFileSync } from "node:fs";
import { config } from "./lib/common.ts";

export default function (pi: any) {
	let written = false;
	pi.on("before_provider_request", (e: any) => {
		if (written || !config.request_manifest) return undefined;
		written = true;
		const messages = e.payload.messages ?? [];
		let lead = 0;
		while (lead < messages.length && ["system", "developer"].includes(messages[lead].role)) lead++;
		const tmp = `${config.request_manifest}.tmp`;
		writeFileSync(tmp, JSON.stringify({ ...e.payload, messages: messages.slice(0, lead) }, null, 1));
		renameSync(tmp, config.request_manifest);
		return undefined;
	});
}
