// Runs a state machine definition in aws-local-stepfunctions, a real ASL
// interpreter, and prints one JSON line with the outcome.
//
//   node run-workflow.mjs --definition FILE --input JSON --clock-wait-arn ARN
//        [--substitutions JSON] [--retry-ms N] [--timeout-ms N]
//
// `${Name}` placeholders in the definition are replaced from --substitutions, as
// SAM's DefinitionSubstitutions does. Task states invoke their Lambda ARN through
// the AWS SDK, which honours AWS_ENDPOINT_URL_LAMBDA: point it at a host that
// serves the Lambda Invoke API (Lapse's local host does).
//
// Wait states follow the local stack's clock, not this process's: each one is
// handed to the function --clock-wait-arn names (the host answers when the stack's
// clock passes the Wait's time), with its input passed through unchanged, so a
// contract end weeks away waits until a test or the demo moves the clock there.
// --retry-ms replaces every retry interval.
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
const clockWait = opts['clock-wait-arn'];
if (!clockWait) throw new Error('--clock-wait-arn is required');
const retryMs = opts['retry-ms'] === undefined ? undefined : Number(opts['retry-ms']);
const overrides = { waitTimeOverrides: {}, retryIntervalOverrides: {} };

// A Wait, as a Task asking the stack's clock; every other field keeps its meaning.
function onStackClock(state) {
  const params = {};
  if (state.Timestamp !== undefined) params.until = state.Timestamp;
  else if (state.TimestampPath !== undefined) params['until.$'] = state.TimestampPath;
  else if (state.Seconds !== undefined) params.seconds = state.Seconds;
  else if (state.SecondsPath !== undefined) params['seconds.$'] = state.SecondsPath;
  else throw new Error('a Wait state without a duration');
  const task = { Type: 'Task', Resource: clockWait, Parameters: params, ResultPath: null };
  for (const key of ['Comment', 'InputPath', 'OutputPath', 'Next', 'End']) {
    if (state[key] !== undefined) task[key] = state[key];
  }
  return task;
}

function rewrite(states) {
  for (const [name, state] of Object.entries(states)) {
    if (state.Type === 'Wait') states[name] = onStackClock(state);
    if (state.Type === 'Parallel') state.Branches.forEach((b) => rewrite(b.States));
    if (state.Type === 'Map') rewrite((state.ItemProcessor ?? state.Iterator).States);
  }
}
rewrite(definition.States);
for (const [name, state] of Object.entries(definition.States)) {
  if (state.Retry && retryMs !== undefined) overrides.retryIntervalOverrides[name] = retryMs;
}

const machine = new StateMachine(definition);
const execution = machine.run(JSON.parse(opts.input), { overrides });
const timeoutMs = Number(opts['timeout-ms'] ?? 120000);
const timer = setTimeout(() => execution.abort(), timeoutMs);

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
clearTimeout(timer);
await collect.catch(() => {});
console.log(JSON.stringify({ ...outcome, states, retries, caught }));
