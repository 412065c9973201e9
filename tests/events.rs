//! Every sample event in `events/` deserializes into the type its handler takes,
//! and every function has samples.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::PathBuf;

use lapse_core::usecase::lifecycle::WorkflowInput;

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
    for entry in std::fs::read_dir(functions).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(!samples(&name).is_empty());
    }
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
    assert!(
        !template.contains(r#""detail-type":["user_hired"]"#),
        "hires start no revocation"
    );
}

#[test]
fn the_state_machines_name_only_real_error_names() {
    let text = std::fs::read_to_string(
        lapse_testkit::workspace_root().join("infra/statemachines/grant-lifecycle.asl.json"),
    )
    .unwrap();
    let definition: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut names = Vec::new();
    for state in definition["States"].as_object().unwrap().values() {
        for clause in state["Retry"]
            .as_array()
            .into_iter()
            .chain(state["Catch"].as_array())
            .flatten()
        {
            for name in clause["ErrorEquals"].as_array().unwrap() {
                names.push(name.as_str().unwrap().to_owned());
            }
        }
    }
    for name in names.iter().filter(|n| n.starts_with("Lapse.")) {
        assert!(
            lapse_lambda::error::names::ALL.contains(&name.as_str()),
            "{name} is not a Lapse error name"
        );
    }
    assert!(names.iter().any(|n| n == "Lapse.Transient"));
}
