//! Every sample event in `events/` deserializes into the type its handler takes,
//! and every function has samples.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::PathBuf;

use lapse_core::access::usecase::lifecycle::WorkflowInput;

fn events_dir() -> PathBuf {
    lapse_testkit::workspace_root().join("events")
}

fn samples(function: &str) -> Vec<(String, String)> {
    let dir = events_dir().join(function);
    let mut found: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|_| panic!("no samples for {function} in {}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            (
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            )
        })
        .collect();
    found.sort();
    assert!(!found.is_empty(), "{function} has no sample events");
    found
}

#[test]
fn every_function_has_samples() {
    let functions = lapse_testkit::workspace_root().join("functions");
    let mut crates = 0;
    for entry in std::fs::read_dir(functions).unwrap() {
        let entry = entry.unwrap();
        // A function is a crate; functions/clippy.toml is not one.
        if !entry.path().join("Cargo.toml").is_file() {
            continue;
        }
        crates += 1;
        let name = entry.file_name().into_string().unwrap();
        assert!(!samples(&name).is_empty());
    }
    assert_eq!(crates, 15, "functions/ holds fifteen function crates");
}

#[test]
fn http_events_carry_verified_identity() {
    let catalog = lapse_core::policy::Catalog::load(
        &lapse_testkit::workspace_root().join("infra/policy/catalog.yaml"),
    )
    .unwrap();
    let mut approvers = 0;
    for function in ["intake", "approval", "grants-api"] {
        for (path, text) in samples(function) {
            let request =
                lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
            let who = lapse_lambda::http::principal(&request, &catalog)
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!(!who.id().as_str().is_empty());
            approvers += usize::from(!who.groups().is_empty());
        }
    }
    assert!(
        approvers > 0,
        "some samples are approvers, by their IdP group ids"
    );
}

#[test]
fn operator_events_carry_the_iam_caller_and_valid_asks() {
    let mut asks = 0;
    for (path, text) in samples("operator") {
        let request =
            lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        let executor =
            lapse_lambda::http::iam_caller(&request).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(executor.starts_with("operator:arn:aws:sts::"), "{path}");
        // No JWT: an operator route is IAM-authorised only.
        let catalog = lapse_core::policy::Catalog::load(
            &lapse_testkit::workspace_root().join("infra/policy/catalog.yaml"),
        )
        .unwrap();
        assert!(
            lapse_lambda::http::principal(&request, &catalog).is_err(),
            "{path}"
        );
        if request.uri().path().starts_with("/v1/operator/revocations") {
            let ask: lapse_core::revocation::operator::RevokeAsk =
                serde_json::from_slice(request.body().as_ref())
                    .unwrap_or_else(|e| panic!("{path}: {e}"));
            let now = chrono::DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z")
                .unwrap()
                .to_utc();
            ask.case(&catalog, &executor, now)
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            asks += 1;
        }
    }
    assert_eq!(asks, 3);
}

#[test]
fn task_events_match_their_inputs() {
    for (path, text) in samples("grant") {
        serde_json::from_str::<WorkflowInput>(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    for (path, text) in samples("revoke") {
        serde_json::from_str::<revoke::RevokeTask>(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    for (path, text) in samples("verify") {
        serde_json::from_str::<verify::VerifyTask>(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    for (path, text) in samples("notify") {
        serde_json::from_str::<notify::NotifyTask>(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    for (path, text) in samples("vendors") {
        serde_json::from_str::<vendors::VendorTask>(&text)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    for (path, text) in samples("credentials") {
        serde_json::from_str::<credentials::CredentialTask>(&text)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    for (path, text) in samples("sweeper") {
        let event: sweeper::ScheduledEvent =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(event["detail-type"], "Scheduled Event");
    }
}

#[test]
fn revocation_events_match_their_inputs() {
    for (path, text) in samples("hr-webhook") {
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let body = if value.get("requestContext").is_some() {
            let request =
                lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
            request.body().to_vec()
        } else {
            text.into_bytes()
        };
        lapse_core::revocation::hr::HrEvent::parse(&body).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    for (path, text) in samples("revocation") {
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        if value.get("step").is_some() {
            serde_json::from_value::<revocation::Step>(value)
                .unwrap_or_else(|e| panic!("{path}: {e}"));
        } else {
            // What the EventBridge rule hands the state machine: the HR event in `detail`.
            lapse_core::revocation::hr::HrEvent::parse(value["detail"].to_string().as_bytes())
                .unwrap_or_else(|e| panic!("{path}: {e}"));
        }
    }
    for (path, text) in samples("inactivity-check") {
        let value: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(value["detail-type"], "Scheduled Event", "{path}");
    }
}

#[test]
fn ttl_stream_events_are_recognised() {
    let mut ttl = 0;
    for (path, text) in samples("ttl-backstop") {
        let event: aws_lambda_events::event::dynamodb::Event =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        for record in &event.records {
            assert!(ttl_backstop::grant_id(record).is_some(), "{path}");
            if ttl_backstop::is_ttl_removal(record) {
                ttl += 1;
            }
        }
    }
    assert_eq!(
        ttl, 1,
        "one sample is a TTL delete, the other Lapse's own release"
    );
}

#[test]
fn the_template_routes_exactly_the_rule_patterns_the_code_uses() {
    let template =
        std::fs::read_to_string(lapse_testkit::workspace_root().join("infra/template.yaml"))
            .unwrap();
    for event_type in lapse_aws::eventbridge::ROUTED {
        let pattern = lapse_aws::eventbridge::rule_pattern(event_type);
        assert!(
            template.contains(&pattern),
            "template lacks the rule pattern {pattern}"
        );
    }
    // Every type HR may send is routed: the open step records each one.
    for event_type in lapse_core::revocation::hr::HrEventType::ALL {
        assert!(
            lapse_aws::eventbridge::ROUTED.contains(&event_type),
            "{} is not routed",
            event_type.as_str()
        );
    }
}

/// Every `(state, Retry|Catch, error name)` of a state machine, Parallel branches
/// and Map processors included.
fn error_clauses(states: &serde_json::Value, out: &mut Vec<(String, &'static str, String)>) {
    for (name, state) in states.as_object().unwrap() {
        for (kind, clauses) in [("Retry", &state["Retry"]), ("Catch", &state["Catch"])] {
            for clause in clauses.as_array().into_iter().flatten() {
                for error in clause["ErrorEquals"].as_array().unwrap() {
                    out.push((name.clone(), kind, error.as_str().unwrap().to_owned()));
                }
            }
        }
        for branch in state["Branches"].as_array().into_iter().flatten() {
            error_clauses(&branch["States"], out);
        }
        for processor in [&state["ItemProcessor"], &state["Iterator"]] {
            if processor.is_object() {
                error_clauses(&processor["States"], out);
            }
        }
    }
}

/// A state machine's error clauses that name something the registry does not
/// know, or retry what can never succeed on a retry.
fn error_name_problems(definition: &serde_json::Value) -> Vec<String> {
    let mut clauses = Vec::new();
    error_clauses(&definition["States"], &mut clauses);
    let mut problems = Vec::new();
    for (state, kind, name) in clauses.iter().filter(|(_, _, n)| n.starts_with("Lapse.")) {
        match lapse_lambda::error::registered(name) {
            None => problems.push(format!("{state}: {kind} {name} is not a Lapse error name")),
            Some(entry) if kind == &"Retry" && !entry.retryable => problems.push(format!(
                "{state}: retries {name}, which a retry never fixes"
            )),
            Some(_) => {}
        }
    }
    problems
}

#[test]
fn the_state_machines_name_only_real_error_names() {
    let load = |file: &str| -> serde_json::Value {
        let path = lapse_testkit::workspace_root()
            .join("infra/statemachines")
            .join(file);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    // Every definition in the folder, not a list that a new one could miss.
    let mut files: Vec<String> =
        std::fs::read_dir(lapse_testkit::workspace_root().join("infra/statemachines"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".asl.json"))
            .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "break-glass-review.asl.json",
            "grant-lifecycle.asl.json",
            "revocation.asl.json"
        ]
    );
    for file in &files {
        let definition = load(file);
        assert_eq!(
            error_name_problems(&definition),
            Vec::<String>::new(),
            "{file}"
        );
        let mut clauses = Vec::new();
        error_clauses(&definition["States"], &mut clauses);
        assert!(
            clauses
                .iter()
                .any(|(_, kind, n)| *kind == "Retry" && n == "Lapse.Transient"),
            "{file}"
        );
    }
    // The revocation lanes run in a Parallel state: their clauses are read too.
    let mut revocation = load("revocation.asl.json");
    let mut clauses = Vec::new();
    error_clauses(&revocation["States"], &mut clauses);
    let lane = clauses
        .iter()
        .find(|(state, _, _)| {
            revocation["States"]
                .as_object()
                .unwrap()
                .keys()
                .all(|top| top != state)
        })
        .expect("a state inside a Parallel branch")
        .0
        .clone();
    // Broken copies: a made-up name and a retried invalid transition, inside a branch.
    let text = revocation.to_string();
    let broken: serde_json::Value =
        serde_json::from_str(&text.replacen("\"Lapse.Transient\"", "\"Lapse.Transiant\"", 1))
            .unwrap();
    assert!(!error_name_problems(&broken).is_empty());
    fn retry_in(states: &mut serde_json::Value, target: &str, error: &str) -> bool {
        for (name, state) in states.as_object_mut().unwrap() {
            if name == target {
                state["Retry"][0]["ErrorEquals"]
                    .as_array_mut()
                    .unwrap()
                    .push(error.into());
                return true;
            }
            for branch in state["Branches"].as_array_mut().into_iter().flatten() {
                if retry_in(&mut branch["States"], target, error) {
                    return true;
                }
            }
        }
        false
    }
    assert!(retry_in(
        &mut revocation["States"],
        &lane,
        "Lapse.InvalidState"
    ));
    let problems = error_name_problems(&revocation);
    assert!(
        problems
            .iter()
            .any(|p| p == &format!("{lane}: retries Lapse.InvalidState, which a retry never fixes")),
        "{problems:?}"
    );
}
