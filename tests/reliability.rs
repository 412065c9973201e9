//! The reliability scenarios of `lapse-bench` (see `bench/src/reliability.rs`), run
//! small: real faults on the wire at 30 %, a process lost between its IAM writes
//! and its state write, duplicated and reordered deliveries, fifty decisions on one
//! request at once. `make reliability` runs them large and writes the table.

use lapse_bench::reliability;
use lapse_bench::report::Figure;
use lapse_local::proxy::{FaultKind, FaultRule, WireProxy};

/// Every checked figure met; the table of what was not, otherwise.
fn assert_met(figures: &[Figure]) {
    assert!(
        figures.iter().any(|f| f.met.is_some()),
        "a scenario that checks nothing"
    );
    let missed: Vec<String> = figures
        .iter()
        .filter(|f| f.met == Some(false))
        .map(|f| {
            format!(
                "{} / {}: {} (target {})",
                f.bench, f.measure, f.value, f.target
            )
        })
        .collect();
    assert!(missed.is_empty(), "{missed:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flow_verifies_or_fails_alarmed_and_re_drives_under_30_percent_wire_faults() {
    assert_met(&reliability::wire_faults(3, 3, 0.3).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_lost_between_iam_and_state_writes_converges_on_re_drive() {
    assert_met(&reliability::lost_between_writes().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_and_reordered_deliveries_have_one_effect_each() {
    assert_met(&reliability::duplicates().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_decisions_at_once_have_one_outcome_and_at_most_one_grant() {
    assert_met(&reliability::racing_decisions(50).await.unwrap());
}

/// An emulator, and the wire proxy before it throttling IAM `ListUsers` at `rate`
/// (its fault choices seeded). The emulator stops when dropped: keep it.
async fn throttling_list_users(rate: f64) -> (lapse_testkit::Emulator, WireProxy) {
    faulting_list_users(rate, FaultKind::Throttle, None).await
}

/// [`throttling_list_users`] with any fault, at most `limit` times.
async fn faulting_list_users(
    rate: f64,
    kind: FaultKind,
    limit: Option<usize>,
) -> (lapse_testkit::Emulator, WireProxy) {
    let emulator = lapse_testkit::Emulator::start().unwrap();
    let proxy = WireProxy::start(emulator.endpoint()).await.unwrap();
    proxy.set_faults(vec![FaultRule {
        service: Some("iam".into()),
        operations: vec!["ListUsers".into()],
        rate,
        kinds: vec![kind],
        limit,
    }]);
    (emulator, proxy)
}

/// An attempt that gets no answer is abandoned after `sdk::ATTEMPT_TIMEOUT` and
/// retried, rather than holding the call until the function's own timeout: the
/// proxy holds the first `ListUsers` for two minutes, and the call is answered
/// well before that, by a second attempt the proxy let through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_attempt_is_abandoned_and_retried() {
    let stall = std::time::Duration::from_secs(120);
    assert!(lapse_aws::sdk::ATTEMPT_TIMEOUT * 4 < stall);
    let (_emulator, proxy) = faulting_list_users(1.0, FaultKind::Delay(stall), Some(1)).await;
    let iam = lapse_aws::sdk::client::iam(&lapse_aws::sdk::load_local(&proxy.url).await);
    let answered = tokio::time::timeout(stall / 2, iam.list_users().send()).await;
    match answered {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("failed: {}", aws_sdk_iam::error::DisplayErrorContext(e)),
        Err(_) => panic!(
            "no answer within {:?}: the stalled attempt was waited out",
            stall / 2
        ),
    }
    // The proxy records a call once its answer is written, so the record can trail
    // the answer by a moment.
    let mut calls = Vec::new();
    let let_through = |calls: &[lapse_local::proxy::Call]| {
        calls
            .iter()
            .any(|c| c.operation == "ListUsers" && c.fault.is_none() && c.status == 200)
    };
    for _ in 0..100 {
        calls.extend(proxy.take_calls());
        if let_through(&calls) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(let_through(&calls), "no attempt was let through: {calls:?}");
}

/// A call the emulator throttles several times in a row still succeeds: Lapse's
/// clients (`sdk::client`, which draw on no quota other tests can empty) retry past
/// the SDK's default three attempts (`sdk::retry_config`). The
/// proxy's fault choices are seeded, so the runs of throttling are the same each time;
/// the test checks that they include one longer than three attempts allow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_throttled_several_times_in_a_row_still_succeeds() {
    let (_emulator, proxy) = throttling_list_users(0.5).await;
    let iam = lapse_aws::sdk::client::iam(&lapse_aws::sdk::load_local(&proxy.url).await);
    for call in 0..24 {
        if let Err(e) = iam.list_users().send().await {
            panic!(
                "call {call} failed: {}",
                aws_sdk_iam::error::DisplayErrorContext(e)
            );
        }
    }
    // One call's attempts are consecutive: the longest run of throttled answers.
    let (mut run, mut longest) = (0, 0);
    for call in proxy.take_calls() {
        run = if call.fault.is_some() { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    assert!(
        longest >= 3,
        "the faults never throttled one call 3 times (longest run {longest}): the test shows nothing"
    );
}

/// Retries draw on no quota that one call's failures can empty for the next:
/// every call of a client from `sdk::client` gets all its attempts however many
/// calls before it were throttled throughout. (With the SDK's default partition,
/// a quota of 500 shared by the whole process, the 15th such call is tried once.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_not_rationed_across_calls() {
    use aws_config::retry::RetryConfig;
    use std::time::Duration;

    let (_emulator, proxy) = throttling_list_users(1.0).await;
    let attempts = lapse_aws::sdk::retry_config().max_attempts() as usize;
    // Lapse's attempts, with waits of a millisecond so that the test is quick.
    let sdk = lapse_aws::sdk::load_local(&proxy.url)
        .await
        .to_builder()
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(attempts as u32)
                .with_initial_backoff(Duration::from_millis(1))
                .with_max_backoff(Duration::from_millis(1)),
        )
        .build();
    let iam = lapse_aws::sdk::client::iam(&sdk);
    let calls = 30;
    for call in 0..calls {
        assert!(
            iam.list_users().send().await.is_err(),
            "call {call} got through a throttle on every attempt"
        );
    }
    let seen = proxy.take_calls();
    assert!(seen.iter().all(|c| c.fault == Some(FaultKind::Throttle)));
    assert_eq!(seen.len(), calls * attempts, "attempts the emulator saw");
}
