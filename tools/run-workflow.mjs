// Runs a state machine definition in aws-local-stepfunctions, a real ASL
// interpreter, and prints one JSON line with the outcome.
//
//   node run-workflow.mjs --definition FILE --input JSON --clock-url URL
//        [--substitutions JSON] [--retry-ms N] [--timeout-ms N]
//        [--task-timeout-default N]
//
// `${Name}` placeholders in the definition are replaced from --substitutions, as
// SAM's DefinitionSubstitutions does. Task states invoke their Lambda ARN through
// the AWS SDK, which honours AWS_ENDPOINT_URL_LAMBDA: point it at a host that
// serves the Lambda Invoke API (Lapse's local host does).
//
// Wait states follow the local stack's clock, not this process's: each becomes a
// Task run here, which asks the stack's clock (--clock-url: the host's
// `/_local/clock`, each call held at most 20 s) until it passes the Wait's time,
// with its input passed through unchanged. So a contract end weeks away waits
// until someone moves the clock there. The interpreter gives a Task 60 s unless
// it says otherwise, so these Tasks say WAIT_TIMEOUT_SECONDS: the longest a
// Wait can last in real time when nobody moves the clock.
// --retry-ms replaces every retry interval. --timeout-ms bounds the execution
// (0: no bound). --task-timeout-default stands in for the interpreter's 60 s on
// every Task without its own timeout, so that a test shows in seconds what the
// default does in a minute.
import { readFileSync } from 'node:fs';
import { StateMachine } from 'aws-local-stepfunctions';

function args(argv) {
  const out = {};
  for (let i = 2; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) {
      throw new Error(`bad argument ${argv[i]}`);
    }
    out[argv[i].slice(2)] = argv[i + 1];
  }
  return out;
}

const opts = args(process.argv);
const substitutions = JSON.parse(opts.substitutions ?? '{}');
const text = readFileSync(opts.definition, 'utf8').replace(/\$\{(\w+)\}/g, (whole, name) => {
  if (!(name in substitutions)) throw new Error(`no substitution for ${whole}`);
  return substitutions[name];
});
const definition = JSON.parse(text);
const clockUrl = opts['clock-url'];
if (!clockUrl) throw new Error('--clock-url is required');
const retryMs = opts['retry-ms'] === undefined ? undefined : Number(opts['retry-ms']);
const overrides = { waitTimeOverrides: {}, retryIntervalOverrides: {}, taskResourceLocalHandlers: {} };
// 23 days: under what a timer can count (2^31 ms).
const WAIT_TIMEOUT_SECONDS = 2000000;

// The stack's clock: now, or (with `until`) once it passes `until`, or after 20 s.
async function stackClock(until) {
  const query = until ? `?until=${encodeURIComponent(until)}` : '';
  const response = await fetch(`${clockUrl}/_local/clock${query}`);
  if (!response.ok) throw new Error(`the stack's clock answered ${response.status}`);
  return response.json();
}

// Runs a Wait on the stack's clock: resolves once the clock passes its time.
async function waitOnStackClock(params) {
  let until = params.until;
  if (until === undefined) {
    const { now } = await stackClock();
    until = new Date(Date.parse(now) + Number(params.seconds) * 1000).toISOString();
  }
  if (Number.isNaN(Date.parse(until))) throw new Error(`bad Wait time ${until}`);
  for (;;) {
    const { reached } = await stackClock(until);
    if (reached) return {};
  }
}

// A Wait, as a Task asking the stack's clock; every other field keeps its meaning.
function onStackClock(name, state) {
  const params = {};
  if (state.Timestamp !== undefined) params.until = state.Timestamp;
  else if (state.TimestampPath !== undefined) params['until.$'] = state.TimestampPath;
  else if (state.Seconds !== undefined) params.seconds = state.Seconds;
  else if (state.SecondsPath !== undefined) params['seconds.$'] = state.SecondsPath;
  else throw new Error('a Wait state without a duration');
  const task = {
    Type: 'Task',
    Resource: 'arn:aws:lambda:us-east-1:123456789012:function:lapse-local-stack-clock',
    Parameters: params,
    ResultPath: null,
    TimeoutSeconds: WAIT_TIMEOUT_SECONDS,
  };
  overrides.taskResourceLocalHandlers[name] = waitOnStackClock;
  for (const key of ['Comment', 'InputPath', 'OutputPath', 'Next', 'End']) {
    if (state[key] !== undefined) task[key] = state[key];
  }
  return task;
}

function rewrite(states) {
  for (const [name, state] of Object.entries(states)) {
    if (state.Type === 'Wait') states[name] = onStackClock(name, state);
    if (state.Type === 'Parallel') state.Branches.forEach((b) => rewrite(b.States));
    if (state.Type === 'Map') rewrite((state.ItemProcessor ?? state.Iterator).States);
  }
}
rewrite(definition.States);
for (const [name, state] of Object.entries(definition.States)) {
  if (state.Retry && retryMs !== undefined) overrides.retryIntervalOverrides[name] = retryMs;
}
if (opts['task-timeout-default'] !== undefined) {
  const seconds = Number(opts['task-timeout-default']);
  const bound = (states) => {
    for (const state of Object.values(states)) {
      if (state.Type === 'Task' && state.TimeoutSeconds === undefined && state.TimeoutSecondsPath === undefined) {
        state.TimeoutSeconds = seconds;
      }
      if (state.Type === 'Parallel') state.Branches.forEach((b) => bound(b.States));
      if (state.Type === 'Map') bound((state.ItemProcessor ?? state.Iterator).States);
    }
  };
  bound(definition.States);
}

const machine = new StateMachine(definition);
const execution = machine.run(JSON.parse(opts.input), { overrides });
const timeoutMs = Number(opts['timeout-ms'] ?? 120000);
// A timer cannot count past 2^31-1 ms (it would fire at once): longer is none.
const timer = timeoutMs > 0 && timeoutMs < 2 ** 31 ? setTimeout(() => execution.abort(), timeoutMs) : undefined;

const states = [];
const retries = [];
const caught = [];
const collect = (async () => {
  for await (const event of execution.eventLogs) {
    if (event.type === 'StateEntered') states.push(event.state.name);
    if (event.type === 'StateRetried') retries.push(event.state.name);
    if (event.type === 'StateCaught') caught.push(event.state.name);
  }
})();

let outcome;
try {
  const output = await execution.result;
  outcome = { status: 'SUCCEEDED', output };
} catch (err) {
  const status = err?.name === 'ExecutionAbortedError' ? 'ABORTED' : 'FAILED';
  outcome = { status, error: err?.cause?.name ?? err?.name ?? 'Error', cause: err?.cause?.message ?? err?.message ?? '' };
}
if (timer) clearTimeout(timer);
await collect.catch(() => {});
console.log(JSON.stringify({ ...outcome, states, retries, caught }));
