// (i) DRY sampler fields in every chat request pi sends. before_provider_request is the last hook
// before the wire; returning a payload replaces it.
import { config, on } from "./lib/common.ts";

export default function (pi: any) {
	if (!on("dry.ts")) return;
	pi.on("before_provider_request", (e: any) => ({ ...e.payload, ...config.dry }));
}
