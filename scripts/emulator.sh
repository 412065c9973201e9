# Sourced by scripts: start_emulator starts moto's server on a free loopback port,
# guarded so it exits when this shell does, and exports the standard AWS variables.
start_emulator() {
  local root="$1" out
  out="$(mktemp)"
  mkdir -p "$root/target"
  # The emulator's own request log and tracebacks (e.g. for IAM calls moto does not
  # implement) go to a file, not into the demo's output.
  "$root/.tools/venv/bin/python" "$root/tools/moto_guard.py" --parent-pid $$ >"$out" 2>"$root/target/moto.log" &
  LAPSE_EMULATOR_PID=$!
  for _ in $(seq 1 300); do
    if grep -q '^LAPSE_MOTO_PORT=' "$out"; then
      local port
      port="$(sed -n 's/^LAPSE_MOTO_PORT=//p' "$out")"
      rm -f "$out"
      export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
      export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
      export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
      export AWS_EC2_METADATA_DISABLED=true
      trap 'kill "$LAPSE_EMULATOR_PID" 2>/dev/null || true' EXIT
      return 0
    fi
    if ! kill -0 "$LAPSE_EMULATOR_PID" 2>/dev/null; then
      echo "the local AWS emulator failed to start" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "the local AWS emulator did not start within 60s" >&2
  return 1
}
