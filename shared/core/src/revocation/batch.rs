//! Batch files of revocations (`lapse revoke --batch`): RFC 4180 CSV, checked row
//! by row so a bad row never hides the others.

use crate::revocation::operator::RevokeAsk;
use crate::revocation::plan::RevocationKind;

/// What makes a whole batch file unusable (its header); row problems are per row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BatchError(pub String);

/// The columns of a batch file, in the order a file without a header row uses.
pub const BATCH_COLUMNS: [&str; 5] = [
    "username",
    "reason",
    "revocation_type",
    "preserve_data",
    "role",
];

/// One row of a batch file, checked: the ask, or what is wrong with the row.
#[derive(Debug)]
pub struct BatchRow {
    /// The row's line in the file (1-based; a quoted field may span lines).
    pub line: u64,
    pub ask: Result<RevokeAsk, String>,
}

/// Parses a batch file (RFC 4180 CSV: quoted fields may hold commas and quotes).
/// The columns are `username,reason,revocation_type,preserve_data` and an optional
/// `role`, named by a header row or in that order. `revocation_type` is `full`,
/// `partial` (what the person holds beyond the `role` column's catalog role, or,
/// when the column is empty, beyond their job role of record in the directory of
/// people, which the stack fills in) or
/// `suspend`; `preserve_data` is `true` or `false`. Each row is checked on its own:
/// a bad row never hides the others.
pub fn parse_batch(text: &str) -> Result<Vec<BatchRow>, BatchError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    // The reader's own line count skips blank lines; the byte offset does not.
    let line_at = |position: Option<&csv::Position>, fallback: u64| {
        // A record's offset is where the blank lines before it start: count from
        // its first character.
        position.map_or(fallback, |p| {
            let bytes = text.as_bytes();
            let mut at = usize::try_from(p.byte())
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            while at < bytes.len() && matches!(bytes[at], b'\n' | b'\r') {
                at += 1;
            }
            bytes[..at].iter().filter(|b| **b == b'\n').count() as u64 + 1
        })
    };
    let mut columns: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = match record {
            Ok(record) => record,
            Err(err) => {
                let line = line_at(err.position(), 0);
                rows.push(BatchRow {
                    line,
                    ask: Err(format!("not valid CSV: {err}")),
                });
                continue;
            }
        };
        let line = line_at(record.position(), index as u64 + 1);
        if record.iter().all(str::is_empty) {
            continue;
        }
        if index == 0 && record.get(0) == Some("username") {
            let names: Vec<String> = record.iter().map(str::to_owned).collect();
            for name in &names {
                if !BATCH_COLUMNS.contains(&name.as_str()) {
                    return Err(BatchError(format!(
                        "line {line}: unknown column `{name}` (the columns are {})",
                        BATCH_COLUMNS.join(", ")
                    )));
                }
            }
            for required in &BATCH_COLUMNS[..4] {
                if !names.iter().any(|n| n == required) {
                    return Err(BatchError(format!(
                        "line {line}: the header has no `{required}` column"
                    )));
                }
            }
            columns = Some(names);
            continue;
        }
        let names: Vec<String> = columns
            .clone()
            .unwrap_or_else(|| BATCH_COLUMNS.iter().map(|c| c.to_string()).collect());
        rows.push(BatchRow {
            line,
            ask: batch_ask(&names, &record),
        });
    }
    Ok(rows)
}

fn batch_ask(names: &[String], record: &csv::StringRecord) -> Result<RevokeAsk, String> {
    if record.len() > names.len() {
        return Err(format!(
            "{} fields, but only {} columns ({})",
            record.len(),
            names.len(),
            names.join(",")
        ));
    }
    let field = |name: &str| -> &str {
        names
            .iter()
            .position(|n| n == name)
            .and_then(|i| record.get(i))
            .unwrap_or_default()
    };
    let user = field("username");
    if user.is_empty() {
        return Err("`username` is empty".to_owned());
    }
    // What IAM allows in a user name, and nothing else: a look-alike letter or a
    // quote is a mistake (or worse) to show here, not a user to look for.
    if crate::identity::PrincipalId::new(user).is_err() {
        return Err(format!(
            "`username` {user:?} is not an IAM user name (ASCII letters, digits and +=,.@_- only, at most 64)"
        ));
    }
    let reason = field("reason");
    if reason.is_empty() {
        return Err(format!("`reason` is empty for {user}"));
    }
    let role = field("role");
    let kind = match field("revocation_type") {
        "full" => RevocationKind::Full,
        "suspend" => RevocationKind::Suspend,
        "partial" => RevocationKind::Partial {
            new_role: role.to_owned(),
        },
        other => {
            return Err(format!(
                "`revocation_type` `{other}` is not full, partial or suspend"
            ));
        }
    };
    if !role.is_empty() && !matches!(kind, RevocationKind::Partial { .. }) {
        return Err(format!(
            "`role` is only for partial revocations ({user} is {})",
            kind.label()
        ));
    }
    let preserve_data = match field("preserve_data").to_ascii_lowercase().as_str() {
        "true" => true,
        "false" => false,
        other => return Err(format!("`preserve_data` `{other}` is not true or false")),
    };
    Ok(RevokeAsk {
        request_id: uuid::Uuid::new_v4().to_string(),
        user: user.to_owned(),
        reason: reason.to_owned(),
        kind,
        preserve_data,
        emergency: false,
        schedule: None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn asks(text: &str) -> Vec<(u64, Result<RevokeAsk, String>)> {
        parse_batch(text)
            .unwrap()
            .into_iter()
            .map(|row| (row.line, row.ask))
            .collect()
    }

    #[test]
    fn batch_rows_are_parsed_as_csv_and_checked_one_by_one() {
        let rows = asks(concat!(
            "username,reason,revocation_type,preserve_data,role\n",
            "jdoe,\"left the company, effective today\",full,false,\n",
            "ana,moved to finance,partial,true,analyst\n",
            "\n",
            "bob,\"said \"\"bye\"\"\",suspend,FALSE,\n",
            "carl,moved,partial,false,\n",
            "dan,left,delete,false,\n",
            "eve,left,full,yes,\n",
            ",left,full,false,\n",
            "fay,,full,false,\n",
            "gus,left,full,false,analyst\n",
            "hal,left,full,false,,extra\n",
            "j\u{43e}doe,left,full,false,\n",
        ));
        let ok = |i: usize| rows[i].1.as_ref().unwrap();
        assert_eq!(ok(0).reason, "left the company, effective today");
        assert_eq!(ok(0).kind, RevocationKind::Full);
        assert!(!ok(0).preserve_data);
        assert_eq!(
            ok(1).kind,
            RevocationKind::Partial {
                new_role: "analyst".into()
            }
        );
        assert!(ok(1).preserve_data);
        assert_eq!(ok(2).reason, "said \"bye\"");
        assert_eq!(ok(2).kind, RevocationKind::Suspend);
        assert_ne!(
            ok(0).request_id,
            ok(1).request_id,
            "one idempotency key per row"
        );
        let lines: Vec<u64> = rows.iter().map(|(line, _)| *line).collect();
        assert_eq!(
            lines,
            [2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13],
            "the blank line is skipped"
        );
        // A partial row without a role keeps the role of record: the stack fills it.
        assert_eq!(
            rows[3].1.as_ref().unwrap().kind,
            RevocationKind::Partial {
                new_role: String::new()
            }
        );
        for (i, message) in [
            (
                4,
                "`revocation_type` `delete` is not full, partial or suspend",
            ),
            (5, "`preserve_data` `yes` is not true or false"),
            (6, "`username` is empty"),
            (7, "`reason` is empty for fay"),
            (8, "`role` is only for partial revocations"),
            (9, "6 fields, but only 5 columns"),
            (10, "is not an IAM user name"),
        ] {
            let err = rows[i].1.as_ref().unwrap_err();
            assert!(err.contains(message), "row {i}: {err}");
        }
    }

    #[test]
    fn batch_files_without_a_header_use_the_documented_order() {
        let rows = asks("jdoe,left,full,false\nana,moved,partial,false,analyst\n");
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|(_, ask)| ask.is_ok()), "{rows:?}");
        let err = parse_batch("username,reason,type,preserve_data\n").unwrap_err();
        assert!(err.to_string().contains("unknown column `type`"), "{err}");
        let err = parse_batch("username,reason,preserve_data\n").unwrap_err();
        assert!(
            err.to_string().contains("no `revocation_type` column"),
            "{err}"
        );
    }
}
