//! A loopback proxy between the AWS SDK and the emulator: it counts every AWS call
//! (service, operation, start and end) and injects real faults on the wire at set
//! rates: throttling and 5xx answers in each service's own error format, dropped
//! connections (before the request reaches the emulator, or after it took effect
//! and before the answer is sent, as a process killed mid-call would see it) and
//! delays.
//!
//! It speaks plain HTTP/1.1 with keep-alive, which is all the SDK sends to an
//! `http://` endpoint. Point an `SdkConfig` at [`WireProxy::url`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One fault the proxy can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The service's throttling error (`Throttling`, `ThrottlingException`, `SlowDown`).
    Throttle,
    /// A 503 `ServiceUnavailable`.
    ServerError,
    /// The connection is closed before the request is forwarded.
    DropBefore,
    /// The request is forwarded and takes effect; the connection is closed before
    /// the answer is sent.
    DropAfter,
    /// The request is held this long, then forwarded.
    Delay(Duration),
}

/// Which calls a rule applies to, and at what rate.
#[derive(Clone, Debug)]
pub struct FaultRule {
    /// The SigV4 service name (`iam`, `dynamodb`, `states`, ...); `None` for all.
    pub service: Option<String>,
    /// Exact operations (`DeleteUserPolicy`); empty for all.
    pub operations: Vec<String>,
    /// Share of matching calls that get a fault, 0.0 to 1.0.
    pub rate: f64,
    /// Faults to choose from, uniformly.
    pub kinds: Vec<FaultKind>,
    /// At most this many faults from the rule (`None`: no limit). A rule that has
    /// used them up no longer matches, so a later rule may decide.
    pub limit: Option<usize>,
}

/// One call the proxy saw.
#[derive(Clone, Debug)]
pub struct Call {
    pub service: String,
    pub operation: String,
    pub started: Instant,
    pub ended: Instant,
    /// The status the client received (0 for a dropped connection).
    pub status: u16,
    pub fault: Option<FaultKind>,
}

#[derive(Debug)]
struct State {
    upstream: String,
    rules: Mutex<Vec<FaultRule>>,
    calls: Mutex<Vec<Call>>,
    seed: Mutex<u64>,
}

/// A running proxy.
#[derive(Debug)]
pub struct WireProxy {
    pub url: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WireProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl WireProxy {
    /// Starts a proxy on a free loopback port in front of `upstream`
    /// (`http://127.0.0.1:PORT`), with no faults and a fixed seed.
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let state = Arc::new(State {
            upstream,
            rules: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
            seed: Mutex::new(0x9E37_79B9_7F4A_7C15),
        });
        let serving = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let state = serving.clone();
                tokio::spawn(async move {
                    // A connection ends when either side closes it; errors are the
                    // client's to see.
                    let _ = serve(state, client).await;
                });
            }
        });
        Ok(Self { url, state, task })
    }

    /// Replaces the fault rules (the first matching rule decides).
    pub fn set_faults(&self, rules: Vec<FaultRule>) {
        *lock(&self.state.rules) = rules;
    }

    /// Removes the fault rules and returns them (to read state back without faults,
    /// then put them back with [`WireProxy::set_faults`]).
    pub fn take_faults(&self) -> Vec<FaultRule> {
        std::mem::take(&mut *lock(&self.state.rules))
    }

    /// Sets the seed of the fault choices, so a run can be repeated.
    pub fn seed(&self, seed: u64) {
        *lock(&self.state.seed) = seed.max(1);
    }

    /// Every call seen since the last [`WireProxy::take_calls`].
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut *lock(&self.state.calls))
    }
}

/// Calls per `service:operation`.
pub fn tally(calls: &[Call]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for call in calls {
        *counts
            .entry(format!("{}:{}", call.service, call.operation))
            .or_insert(0) += 1;
    }
    counts
}

struct Request {
    head: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The SigV4 credential scope's service.
    fn service(&self) -> String {
        self.header("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').nth(3))
            .unwrap_or("unsigned")
            .to_owned()
    }

    fn operation(&self) -> String {
        if let Some(target) = self.header("x-amz-target") {
            return target.rsplit('.').next().unwrap_or(target).to_owned();
        }
        let form = String::from_utf8_lossy(&self.body);
        if let Some(action) = form.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
            return action.to_owned();
        }
        // REST protocols: the method and the first path segment.
        let mut parts = self.head.split(' ');
        let method = parts.next().unwrap_or("");
        let path = parts.next().unwrap_or("");
        let first = path.trim_start_matches('/').split(['/', '?']).next();
        format!("{method} /{}", first.unwrap_or(""))
    }
}

async fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut head = String::new();
    if reader.read_line(&mut head).await? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let mut request = Request {
        head: head.trim_end().to_owned(),
        headers,
        body: Vec::new(),
    };
    if request
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).await?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).await?;
            if size == 0 {
                break;
            }
            request.body.extend_from_slice(&chunk[..size]);
        }
        request
            .headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("transfer-encoding"));
    } else if let Some(length) = request.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        request.body = vec![0; length];
        reader.read_exact(&mut request.body).await?;
    }
    Ok(Some(request))
}

/// Picks the fault for one call, if any.
fn choose(state: &State, service: &str, operation: &str) -> Option<FaultKind> {
    let mut rules = lock(&state.rules);
    let rule = rules.iter_mut().find(|r| {
        r.limit != Some(0)
            && r.service.as_deref().is_none_or(|s| s == service)
            && (r.operations.is_empty() || r.operations.iter().any(|o| o == operation))
    })?;
    let mut seed = lock(&state.seed);
    // xorshift64*: repeatable for a seed, good enough to spread faults.
    let mut next = || {
        *seed ^= *seed >> 12;
        *seed ^= *seed << 25;
        *seed ^= *seed >> 27;
        seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let roll = (next() >> 11) as f64 / (1u64 << 53) as f64;
    if roll >= rule.rate || rule.kinds.is_empty() {
        return None;
    }
    let pick = (next() % rule.kinds.len() as u64) as usize;
    if let Some(left) = rule.limit.as_mut() {
        *left -= 1;
    }
    rule.kinds.get(pick).copied()
}

/// The body and headers of a fault answer in the service's own protocol.
fn fault_answer(request: &Request, kind: FaultKind) -> (u16, Vec<(String, String)>, String) {
    let (status, code, message) = match kind {
        FaultKind::ServerError => (503, "ServiceUnavailable", "injected: service unavailable"),
        _ => (400, "Throttling", "injected: rate exceeded"),
    };
    let service = request.service();
    if request.header("x-amz-target").is_some() || service == "scheduler" {
        let code = if code == "Throttling" {
            "ThrottlingException"
        } else {
            code
        };
        let status = if service == "scheduler" && status == 400 {
            429
        } else {
            status
        };
        (
            status,
            vec![
                ("Content-Type".into(), "application/x-amz-json-1.0".into()),
                ("x-amzn-ErrorType".into(), code.into()),
            ],
            format!(r#"{{"__type":"{code}","message":"{message}"}}"#),
        )
    } else if service == "s3" {
        let (status, code) = if code == "Throttling" {
            (503, "SlowDown")
        } else {
            (status, code)
        };
        (
            status,
            vec![("Content-Type".into(), "application/xml".into())],
            format!("<Error><Code>{code}</Code><Message>{message}</Message></Error>"),
        )
    } else {
        (
            status,
            vec![("Content-Type".into(), "text/xml".into())],
            format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>injected</RequestId></ErrorResponse>"
            ),
        )
    }
}

async fn write_response(
    client: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("connection")
        {
            continue;
        }
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    client.write_all(out.as_bytes()).await?;
    client.write_all(body).await?;
    client.flush().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Sends `request` to the emulator over a fresh connection and reads the whole answer.
async fn forward(
    upstream: &str,
    request: &Request,
) -> std::io::Result<(u16, Vec<(String, String)>, Vec<u8>)> {
    let stream = TcpStream::connect(upstream).await?;
    let mut upstream_reader = BufReader::new(stream);
    let mut out = format!("{}\r\n", request.head);
    for (name, value) in &request.headers {
        if name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        request.body.len()
    ));
    let stream = upstream_reader.get_mut();
    stream.write_all(out.as_bytes()).await?;
    stream.write_all(&request.body).await?;
    stream.flush().await?;
    let mut status_line = String::new();
    upstream_reader.read_line(&mut status_line).await?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no status"))?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if upstream_reader.read_line(&mut line).await? == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            upstream_reader.read_line(&mut size).await?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            let mut chunk = vec![0; size + 2];
            upstream_reader.read_exact(&mut chunk).await?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        body = vec![0; length];
        upstream_reader.read_exact(&mut body).await?;
    } else {
        upstream_reader.read_to_end(&mut body).await?;
    }
    Ok((status, headers, body))
}

async fn serve(state: Arc<State>, client: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(client);
    while let Some(request) = read_request(&mut reader).await? {
        let started = Instant::now();
        let service = request.service();
        let operation = request.operation();
        let fault = choose(&state, &service, &operation);
        let record = |status: u16| Call {
            service: service.clone(),
            operation: operation.clone(),
            started,
            ended: Instant::now(),
            status,
            fault,
        };
        match fault {
            Some(FaultKind::DropBefore) => {
                lock(&state.calls).push(record(0));
                return Ok(());
            }
            Some(FaultKind::Throttle | FaultKind::ServerError) => {
                let (status, headers, body) =
                    fault_answer(&request, fault.unwrap_or(FaultKind::Throttle));
                write_response(reader.get_mut(), status, &headers, body.as_bytes()).await?;
                lock(&state.calls).push(record(status));
                continue;
            }
            Some(FaultKind::Delay(delay)) => tokio::time::sleep(delay).await,
            Some(FaultKind::DropAfter) | None => {}
        }
        let (status, headers, body) = match forward(&state.upstream, &request).await {
            Ok(answer) => answer,
            Err(_) => {
                lock(&state.calls).push(record(0));
                return Ok(());
            }
        };
        if fault == Some(FaultKind::DropAfter) {
            lock(&state.calls).push(record(0));
            return Ok(());
        }
        write_response(reader.get_mut(), status, &headers, &body).await?;
        lock(&state.calls).push(record(status));
    }
    Ok(())
}
