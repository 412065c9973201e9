// Runs a state machine definition in aws-local-stepfunctions, a real ASL
// interpreter, and prints one JSON line with the outcome.
//
//   node run-workflow.mjs --definition FILE --input JSON
//        [--substitutions JSON] [--wait-ms N] [--retry-ms N] [--timeout-ms N]
//
// `${Name}` placeholders in the definition are replaced from --substitutions, as
// SAM's DefinitionSubstitutions does. Task states invoke their Lambda ARN through
// the AWS SDK, which honours AWS_ENDPOINT_URL_LAMBDA: point it at a host that
// serves the Lambda Invoke API (Lapse's local host does). --wait-ms replaces the
// duration of every Wait state and --retry-ms every retry interval, so a test can
// run a workflow of hours in seconds.
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
const waitMs = opts['wait-ms'] === undefined ? undefined : Number(opts['wait-ms']);
const retryMs = opts['retry-ms'] === undefined ? undefined : Number(opts['retry-ms']);
const overrides = { waitTimeOverrides: {}, retryIntervalOverrides: {} };
for (const [name, state] of Object.entries(definition.States)) {
  if (state.Type === 'Wait' && waitMs !== undefined) overrides.waitTimeOverrides[name] = waitMs;
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
