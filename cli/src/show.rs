//! Printing API answers for people.

use serde_json::Value;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

/// A time as people read it: to the second, in UTC (`2026-12-07T06:28:50Z`).
fn t(v: &Value) -> String {
    match v.as_str().map(chrono::DateTime::parse_from_rfc3339) {
        Some(Ok(at)) => at
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        _ => s(v).to_owned(),
    }
}

/// What a review answered: its finding once the review is complete, or who is
/// still needed.
pub fn review_outcome(outcome: &Value) -> String {
    if let Some(finding) = outcome.as_str() {
        return finding.to_owned();
    }
    let remaining: Vec<&str> = outcome["recorded"]["remaining"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if remaining.is_empty() {
        "recorded".to_owned()
    } else {
        format!(
            "recorded; still needed: a review from {}",
            remaining.join(" and ")
        )
    }
}

/// One line per request.
pub fn line(request: &Value) -> String {
    let until = if request["window"]["expires_at"].is_string() {
        format!(" until {}", t(&request["window"]["expires_at"]))
    } else {
        String::new()
    };
    format!(
        "{}  {:<9} {:<22} {:>6}  {}{}",
        s(&request["id"]),
        s(&request["status"]),
        s(&request["resource"]),
        s(&request["duration"]),
        s(&request["requester"]),
        until
    )
}

/// A request in full: risk factors, route, approvals, window.
pub fn detail(request: &Value) -> String {
    let mut out = vec![
        format!("request   {}", s(&request["id"])),
        format!("status    {}", s(&request["status"])),
        format!(
            "asked     {} for {} for {}: \"{}\"",
            s(&request["requester"]),
            s(&request["resource"]),
            s(&request["duration"]),
            s(&request["justification"])
        ),
        format!(
            "risk      {} ({})",
            request["risk"]["score"],
            s(&request["risk"]["level"])
        ),
    ];
    for factor in request["risk"]["factors"].as_array().into_iter().flatten() {
        out.push(format!(
            "            +{:<3} {:<17} {}",
            factor["points"],
            s(&factor["name"]),
            s(&factor["reason"])
        ));
    }
    out.push(format!("route     {}", s(&request["routing"]["reason"])));
    for approval in request["approvals"].as_array().into_iter().flatten() {
        out.push(format!(
            "approved  by {} ({}) at {}",
            s(&approval["approver"]),
            s(&approval["group"]),
            t(&approval["at"])
        ));
    }
    if let Some(waiting) = still_needed(request) {
        out.push(format!("waiting   {waiting}"));
    }
    if let Some(denial) = request["denial"].as_object() {
        out.push(format!(
            "denied    by {}: {}",
            s(&denial["by"]),
            s(&denial["comment"])
        ));
    }
    if request["window"].is_object() {
        out.push(format!(
            "window    {} → {}",
            t(&request["window"]["starts_at"]),
            t(&request["window"]["expires_at"])
        ));
    }
    if let Some(vendor) = request["vendor"].as_object() {
        out.push(format!(
            "vendor    {} ({}) for project {}, sponsored by {}",
            s(&vendor["user"]),
            s(&vendor["email"]),
            s(&vendor["project"]),
            s(&request["requester"])
        ));
    }
    let glass = &request["break_glass"];
    if glass.is_object() {
        let justified = match glass["justification"].as_object() {
            Some(j) if j["late"] == true => format!("justified late at {}", t(&j["at"])),
            Some(j) => format!("justified at {}", t(&j["at"])),
            None => format!("justification due {}", t(&glass["due"])),
        };
        let reviews: Vec<String> = glass["reviews"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                format!(
                    "{} ({}): {}",
                    s(&r["reviewer"]),
                    s(&r["group"]),
                    s(&r["finding"])
                )
            })
            .collect();
        out.push(format!("BREAK-GLASS {justified}"));
        out.push(format!(
            "review    {}{}",
            if reviews.is_empty() {
                "none yet".to_owned()
            } else {
                reviews.join("; ")
            },
            glass["outcome"]
                .as_str()
                .map(|o| format!(" → {o}"))
                .unwrap_or_default()
        ));
    }
    out.join("\n")
}

/// For a pending request, who still has to approve: one person from each group
/// the route names that no approval has filled yet (a dual route may name a group
/// twice).
fn still_needed(request: &Value) -> Option<String> {
    if request["status"] != "pending" {
        return None;
    }
    let route = &request["routing"]["route"];
    let mut needed: Vec<&str> = match route["kind"].as_str() {
        Some("dual") => route["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect(),
        Some("owner") => route["group"].as_str().into_iter().collect(),
        _ => Vec::new(),
    };
    for approval in request["approvals"].as_array().into_iter().flatten() {
        if let Some(at) = needed.iter().position(|g| approval["group"] == *g) {
            needed.remove(at);
        }
    }
    (!needed.is_empty()).then(|| {
        format!(
            "for an approval from {} (one person each, never the requester)",
            needed.join(" and ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_dual_approval_says_who_approved_and_who_is_still_needed() {
        let request = serde_json::json!({
            "id": "req-1", "status": "pending", "requester": "rita",
            "resource": "prod-db-admin", "duration": "1h", "justification": "INC-1",
            "risk": {"score": 70, "level": "high", "factors": []},
            "routing": {"reason": "high risk", "route": {"kind": "dual", "groups": ["managers", "security"]}},
            "approvals": [{"approver": "vic", "group": "managers", "at": "2026-12-07T10:00:00Z"}],
        });
        let text = detail(&request);
        assert!(text.contains("approved  by vic (managers)"), "{text}");
        assert!(
            text.contains("waiting   for an approval from security (one person each"),
            "{text}"
        );
        assert!(!text.contains("from managers"), "{text}");
        let mut decided = request.clone();
        decided["status"] = "approved".into();
        assert!(!detail(&decided).contains("waiting"));
    }
}
