//! Break-glass through the local stack: the HTTP API behind the JWT gateway, the
//! grant lifecycle and the justification timeline (`break-glass-review.asl.json`)
//! in the ASL interpreter, against the emulator. IAM, SNS deliveries and the event
//! bus are read back; nothing is taken from a response alone.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use chrono::{DateTime, Utc};
use lapse_core::access::grant::document_expiry;
use serde_json::Value;

use crate::support::{Stack, WAIT, id, queue_on_topic};

/// Every message on `queue` until one `matches`, or none within the wait.
async fn received(
    sdk: &aws_config::SdkConfig,
    queue: &str,
    matches: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    while tokio::time::Instant::now() < deadline {
        let out = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for message in out.messages() {
            seen.push(serde_json::from_str(message.body().unwrap_or("null")).unwrap());
        }
        if seen.iter().any(&matches) {
            break;
        }
    }
    seen
}

fn subjects(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| m["Subject"].as_str().map(str::to_owned))
        .collect()
}

fn at(request: &Value, field: &str) -> DateTime<Utc> {
    request["break_glass"][field]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A queue that receives the incidents put on the stack's bus.
async fn incident_queue(s: &Stack) -> String {
    let sdk = &s.stack.sdk;
    let (url, arn) = crate::support::new_queue(sdk, "incidents").await;
    let events = aws_sdk_eventbridge::Client::new(sdk);
    let rule = lapse_testkit::unique_name("incidents");
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(&s.stack.config.event_bus)
        .event_pattern(r#"{"source":["lapse.incident"]}"#)
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(&s.stack.config.event_bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("incidents")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_is_granted_at_once_bounded_in_iam_then_justified_and_reviewed() {
    let s = Stack::start().await;
    let security = queue_on_topic(&s.stack.sdk, &s.stack.config.topics.security, "sec").await;
    let dana = s.as_user("dana");

    // Eligibility before anything else: a contractor in the on-call group, an
    // employee outside it, a resource that offers no break-glass. Each is a 403
    // that names why, and none is granted or stored.
    for (who, resource, why) in [
        ("carl", "prod-db-admin", "only employees may break glass"),
        ("bill", "prod-db-admin", "it is for members of on-call"),
        (
            "dana",
            "prod-db-root-credential",
            "break-glass is not offered",
        ),
        ("dana", "billing-reports-read", "break-glass is not offered"),
    ] {
        let err = s
            .as_user(who)
            .break_glass(resource, Some("1h"), "INC-9: writes failing", None)
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(403), "{who} on {resource}: {err}");
        assert!(err.to_string().contains(why), "{who} on {resource}: {err}");
        assert!(
            s.as_user(who).mine().await.unwrap()["requests"]
                .as_array()
                .is_none_or(Vec::is_empty),
            "{who}: nothing stored"
        );
    }

    // Over the cap: refused, and nothing is granted.
    let err = dana
        .break_glass("prod-db-admin", Some("3h"), "INC-9: writes failing", None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(err.to_string().contains("capped at 2h"), "{err}");

    let created = dana
        .break_glass(
            "prod-db-admin",
            Some("1h"),
            "INC-9: writes failing",
            Some("INC-9"),
        )
        .await
        .unwrap();
    assert_eq!(created["status"], "approved", "{created}");
    assert_eq!(created["routing"]["route"]["kind"], "break_glass");
    let rid = id(&created);
    assert_eq!(
        s.stack.workflows.launched(),
        std::slice::from_ref(&rid),
        "one grant workflow, and none for the refused ask"
    );

    // Granted without anyone approving, and bounded by aws:CurrentTime in IAM.
    let active = s.provisioned(&dana, &rid, "prod-db-admin", "dana").await;
    let document = &s.iam("dana").await.inline_policies[&format!("lapse-prod-db-admin-{rid}")];
    let expires: DateTime<Utc> = active["window"]["expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(document_expiry(document), Some(expires));
    let told = received(&s.stack.sdk, &security, |m| {
        m["Subject"]
            .as_str()
            .is_some_and(|x| x.starts_with("Break-glass:"))
    })
    .await;
    assert!(
        subjects(&told).contains(&format!(
            "Break-glass: {} took prod-db-admin for 1h",
            s.user("dana")
        )),
        "{told:?}"
    );

    // Only the requester justifies; reviewers are a manager and security, never
    // the requester, each from a group the review still needs.
    let err = s
        .as_user("erin")
        .justify(&rid, "not mine")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    let justified = dana
        .justify(&rid, "Failed over the primary (INC-9).")
        .await
        .unwrap();
    assert_eq!(justified["break_glass"]["justification"]["late"], false);
    for (who, status) in [("dana", 403), ("bill", 403)] {
        let err = s
            .as_user(who)
            .review(&rid, "justified", "")
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(status), "{who}: {err}");
    }
    let first = s
        .as_user("mia")
        .review(&rid, "justified", "ok")
        .await
        .unwrap();
    assert_eq!(first["outcome"]["recorded"]["remaining"][0], "security");
    let closed = s
        .as_user("sam")
        .review(&rid, "justified", "ok")
        .await
        .unwrap();
    assert_eq!(closed["outcome"], "justified", "{closed}");

    // The grant ends as any grant does: revoked at expiry and verified.
    s.pass(&active);
    assert_eq!(s.workflow(&rid).await.status, "SUCCEEDED");
    assert!(s.iam("dana").await.inline_policies.is_empty());

    // The timeline wakes to find the use answered, and sends nothing.
    s.stack
        .clock
        .advance_to(at(&created, "due") + chrono::TimeDelta::seconds(1));
    let timeline = s.stack.break_glass.wait(&rid, WAIT).await.unwrap();
    assert_eq!(timeline.status, "SUCCEEDED", "{timeline:?}");
    let output = timeline.output.unwrap();
    assert_eq!(output["remind"]["sent"], false, "{output}");
    assert_eq!(output["escalate"]["sent"], false, "{output}");

    // The auditor's break-glass report: every verified chain, only break-glass
    // requests' events. An ordinary request of the same stack stays out.
    let ordinary = dana
        .request(
            "billing-reports-read",
            Some("30m"),
            "reconcile invoices",
            None,
        )
        .await
        .unwrap();
    s.provisioned(&dana, &id(&ordinary), "billing-reports-read", "dana")
        .await;
    let reader = s.audit_reader().await;
    let mut exported = Vec::new();
    let written = reader.export(None, true, &mut exported).await.unwrap();
    let subjects: std::collections::BTreeSet<String> = String::from_utf8(exported)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["subject"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(written >= 5, "{written}");
    assert_eq!(
        subjects.into_iter().collect::<Vec<_>>(),
        std::slice::from_ref(&rid)
    );

    let audit = s.audit(&rid).await;
    for (action, times) in [
        ("breakglass.declared", 1),
        ("grant.activated", 1),
        ("breakglass.justified", 1),
        ("breakglass.reviewed", 2),
        ("grant.verified", 1),
        ("breakglass.reminded", 0),
        ("breakglass.incident", 0),
    ] {
        assert_eq!(
            audit.iter().filter(|a| *a == action).count(),
            times,
            "{action} in {audit:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_break_glass_is_reminded_escalated_and_an_unjustified_one_is_an_incident() {
    let s = Stack::start().await;
    let sdk = &s.stack.sdk;
    let users = queue_on_topic(sdk, &s.stack.config.topics.users, "users").await;
    let approvers = queue_on_topic(sdk, &s.stack.config.topics.approvers, "approvers").await;
    let security = queue_on_topic(sdk, &s.stack.config.topics.security, "sec").await;
    let incidents = incident_queue(&s).await;
    let erin = s.as_user("erin");
    let created = erin
        .break_glass("prod-db-admin", None, "INC-12: on-call page", None)
        .await
        .unwrap();
    let rid = id(&created);
    assert_eq!(
        created["duration"], "2h",
        "the cap when no duration is asked"
    );
    // Granted before the clock moves, so the grant's window is now's.
    s.provisioned(&erin, &rid, "prod-db-admin", "erin").await;

    // Three quarters into the window: a reminder to the requester, once.
    s.stack.clock.advance_to(at(&created, "remind_at"));
    let reminded = received(sdk, &users, |m| {
        m["Subject"]
            .as_str()
            .is_some_and(|x| x.starts_with("Reminder:"))
    })
    .await;
    assert_eq!(
        subjects(&reminded)
            .iter()
            .filter(|x| x.starts_with("Reminder:"))
            .count(),
        1,
        "{reminded:?}"
    );
    // At the deadline: the reviewers and security hear it is overdue.
    s.stack
        .clock
        .advance_to(at(&created, "due") + chrono::TimeDelta::seconds(1));
    let timeline = s.stack.break_glass.wait(&rid, WAIT).await.unwrap();
    assert_eq!(timeline.status, "SUCCEEDED", "{timeline:?}");
    let overdue = format!(
        "Overdue: {} has not justified break-glass use of prod-db-admin",
        s.user("erin")
    );
    for queue in [&approvers, &security] {
        let messages = received(sdk, queue, |m| m["Subject"] == overdue.as_str()).await;
        assert!(subjects(&messages).contains(&overdue), "{messages:?}");
    }

    // Late, and marked late.
    let late = erin.justify(&rid, "Paged at 3am.").await.unwrap();
    assert_eq!(late["break_glass"]["justification"]["late"], true);

    // Security finds it unjustified: an incident on the bus and an alert.
    let found = s
        .as_user("sam")
        .review(&rid, "unjustified", "no incident on record")
        .await
        .unwrap();
    assert_eq!(found["outcome"], "unjustified");
    let events = received(sdk, &incidents, |e| e["source"] == "lapse.incident").await;
    let incident = events
        .iter()
        .find(|e| e["source"] == "lapse.incident")
        .unwrap_or_else(|| panic!("no incident on the bus: {events:?}"));
    assert_eq!(incident["detail-type"], "break_glass_unjustified");
    assert_eq!(incident["detail"]["id"], format!("breakglass-{rid}"));
    assert_eq!(incident["detail"]["subject"], s.user("erin").as_str());
    let alerted = received(sdk, &security, |m| {
        m["Subject"]
            .as_str()
            .is_some_and(|x| x.starts_with("Incident:"))
    })
    .await;
    assert!(
        subjects(&alerted)
            .iter()
            .any(|x| x.starts_with("Incident: unjustified break-glass")),
        "{alerted:?}"
    );
    // Closed: no further finding changes it.
    let err = s
        .as_user("mia")
        .review(&rid, "justified", "")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");

    let audit = s.audit(&rid).await;
    for action in [
        "breakglass.reminded",
        "breakglass.escalated",
        "breakglass.justified",
        "breakglass.incident",
    ] {
        assert_eq!(
            audit.iter().filter(|a| *a == action).count(),
            1,
            "{action} in {audit:?}"
        );
    }
    // The grant itself still ended as any grant does.
    assert_eq!(s.workflow(&rid).await.status, "SUCCEEDED");
    assert!(s.iam("erin").await.inline_policies.is_empty());
}
