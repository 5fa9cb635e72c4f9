// Preloaded into pi (NODE_OPTIONS=--import, by harnesses/pi/adapter.py and the Harbor agent): print
// message_update events without their `partial` and `message` copies of the whole message so far.
// pi prints one per streamed token, so the 32,000-token runaway would print ~2.7 GB of JSON
// (quadratic in the turn's length): 12 s of pi's time instead of 2. Only the printed line changes;
// pi's agent, session and extensions see the full events. It also gathers the lines of one
// event-loop turn into one write to the pipe. (A .mjs, not .ts: Node cannot --import TypeScript.)
const stringify = JSON.stringify;
JSON.stringify = function (value, ...rest) {
  if (rest.length === 0 && value?.type === "message_update" && value.assistantMessageEvent) {
    const { type, contentIndex, delta } = value.assistantMessageEvent;
    return stringify({ type: "message_update", assistantMessageEvent: { type, contentIndex, delta } });
  }
  return stringify(value, ...rest);
};
// One write per turn of the event loop instead of one per event: pi writes a line per streamed
// token, each a syscall on the pipe. Pipes are synchronous on Linux, so what is left is written
// at exit too.
const write = process.stdout.write.bind(process.stdout);
let pending = [];
const flush = () => { if (pending.length) { const text = pending.join(""); pending = []; write(text); } };
process.stdout.write = function (chunk, encoding, callback) {
  if (typeof encoding === "function" || typeof callback === "function" || typeof chunk !== "string") {
    flush();
    return write(chunk, encoding, callback);
  }
  if (pending.push(chunk) === 1) setImmediate(flush);
  return true;
};
process.on("exit", flush);
