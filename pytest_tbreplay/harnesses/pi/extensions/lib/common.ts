// Shared by the tbreplay extensions: the run's configuration (written by pytest_tbreplay/harnesses/pi),
// the event log the pi harness reads back, and the state several extensions need (the verify gate, how
// many nudges went out). State lives on globalThis because each `-e` file may get its own copy of
// this module.
import { appendFileSync, readFileSync, statSync } from "node:fs";
import { VerifyGate } from "./gate.ts";

/** What the harness writes to TBREPLAY_PI_CONFIG: pytest_tbreplay/harnesses/pi/contract.py
 * ExtensionConfig, field by field (tests/unit/test_pi_contract.py keeps the two the same). */
export type Config = {
	pi_version: string;
	log: string;
	on: string[];
	tool_results: string | null;
	base_url: string;
	model: string;
	dry: Record<string, number>;
	task: { instruction: string; acceptance: string[] };
	nudge: string;
	max_nudges: number;
	verify_contract: string;
	max_verify_demands: number;
	verify_rules: Record<string, any>;
	success_pattern: string;
	summary_system: string;
	summary_ask: string;
	cut_call: string;
	max_tokens: number;
	summary_tokens: number;
	keep_recent_tokens: number;
	proactive_compaction: boolean;
	overflow_retry: boolean;
	anchored_summary: boolean;
	loop: Record<string, any>;
	stuck_guard: Record<string, number> | null;
	stuck_nudge: string;
	stuck_stop: string;
	settle_timeout_ms: number;
	request_manifest: string | null;
};

/** What the extensions write to the event log, by kind (contract.py LOG; the pi harness reads it). */
export type LogEntry =
	| { kind: "next"; text: string; as: "nudge" | "verify_demand" }
	| { kind: "cut"; message: number; rule: string; tokens: number }
	| { kind: "cut_call"; id: string; text: string }
	| { kind: "request"; body: any }
	| { kind: "compaction"; reason: string; tokens_before: number; summary: string; turn: number }
	| { kind: "compaction_cancelled"; reason: string; why?: string }
	| { kind: "stuck_nudge"; text: string }
	| { kind: "stuck"; text: string; rule: string }
	| { kind: "tool_missing"; id: string; name: string; params: any }
	| { kind: "tool_diverged"; id: string; name: string; params: any; recorded_name: string; recorded: any };

// The trial's configuration, read when the file changes: a kept pi runs many trials, and pi >= 1.x
// imports an extension module once per working folder (loader.js extensionCache) and only calls
// its factory again for each new session, so nothing trial-specific may be read at import time.
// The harness replaces the file (a new inode) before each trial.
let cached: { key: string; value: Config } | undefined;
function current(): Config {
	const path = process.env.TBREPLAY_PI_CONFIG!;
	const st = statSync(path);
	const key = `${st.ino}:${st.mtimeMs}:${st.size}`;
	if (cached?.key !== key) cached = { key, value: JSON.parse(readFileSync(path, "utf8")) };
	return cached.value;
}
export const config: Config = new Proxy({} as Config, { get: (_target, key) => (current() as any)[key] });

/** Whether this trial's profile turns the extension on: a kept pi loads every extension
 * (the pi harness ALL_EXTENSIONS), so each one checks before it registers anything. */
export function on(extension: string): boolean {
	return config.on.includes(extension);
}

export function log<K extends LogEntry["kind"]>(kind: K, data: Omit<Extract<LogEntry, { kind: K }>, "kind">): void {
	// Synchronous on purpose: pi prints agent_end only after the extensions' agent_end handlers
	// returned, so whoever reads the log after agent_end sees every decision made for that run.
	appendFileSync(config.log, JSON.stringify({ kind, ...data }) + "\n");
}

type State = {
	log: string; // the trial this state belongs to (its event log)
	gate: VerifyGate;
	observed: Set<string>;
	nudges: number;
	assistantMessages: number;
	next: string[];
	compactionCancelled: boolean; // auto_compaction.ts declined the compaction pi started
};
// A kept pi (the pi harness's pool) runs many trials, and a new trial has a new log, so state from the
// trial before it is dropped when it is next looked at.
function currentState(): State {
	const kept: State | undefined = (globalThis as any).__tbreplay;
	if (kept?.log === config.log) return kept;
	return ((globalThis as any).__tbreplay = {
		log: config.log,
		gate: new VerifyGate(config.verify_rules, config.success_pattern),
		observed: new Set<string>(),
		nudges: 0,
		assistantMessages: 0,
		next: [],
		compactionCancelled: false,
	});
}
export const state: State = new Proxy({} as State, {
	get: (_target, key) => (currentState() as any)[key],
	set: (_target, key, value) => ((currentState() as any)[key] = value, true),
});

/** Book a finished tool call in the verify gate once (several extensions may see it); true if it
 * checked produced output. */
export function observe(e: any): boolean {
	if (state.observed.has(e.toolCallId)) return false;
	state.observed.add(e.toolCallId);
	return state.gate.observe(e.toolName, e.input, textOf(e), !!e.isError);
}

/** Ask for `text` as the next user message once pi is idle: the pi harness's RPC driver reads it from the
 * log, print_continue.ts (print mode, Harbor) from state.next. */
export function queueNext(text: string, as: "nudge" | "verify_demand"): void {
	log("next", { text, as });
	state.next.push(text);
}

export function lastAssistant(messages: any[]): any {
	return [...messages].reverse().find((m) => m.role === "assistant");
}

export function textOf(message: any): string {
	return (message?.content ?? []).filter((c: any) => c.type === "text").map((c: any) => c.text).join("");
}
