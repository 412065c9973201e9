//! What each fuzz target checks, for any input: nothing panics, and what is
//! accepted keeps its promises. Used by the cargo-fuzz targets (`fuzz/`) and
//! replayed on stable by lapse-core's `fuzz_smoke` test.

use lapse_core::duration::Span;
use lapse_core::identity::PrincipalId;
use lapse_core::policy::Catalog;
use lapse_core::revocation::batch::parse_batch;
use lapse_core::revocation::hr::HrEvent;

/// An HR webhook body: an accepted event names a user IAM could hold, and reads
/// back the same after a round trip through its own JSON.
pub fn hr_event(data: &[u8]) {
    if let Ok(event) = HrEvent::parse(data) {
        assert!(PrincipalId::new(event.user.username.as_str()).is_ok());
        assert!(!event.event_id.is_empty(), "an event without an id");
        let json = serde_json::to_vec(&event).expect("an accepted event serializes");
        let again = HrEvent::parse(&json).expect("an accepted event reads back");
        assert_eq!(again, event);
    }
}

/// A batch CSV: rows come in file order with real line numbers, and an accepted
/// row names a user IAM could hold, with a reason.
pub fn batch_csv(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(rows) = parse_batch(&text) {
        let lines = text.matches('\n').count() as u64 + 1;
        let mut last = 0;
        for row in rows {
            assert!(
                row.line >= 1 && row.line <= lines,
                "line {} of {lines}",
                row.line
            );
            assert!(row.line >= last, "rows out of order");
            last = row.line;
            if let Ok(ask) = row.ask {
                assert!(
                    PrincipalId::new(ask.user.as_str()).is_ok(),
                    "{:?}",
                    ask.user
                );
                assert!(!ask.reason.is_empty());
            }
        }
    }
}

/// A duration: an accepted one is positive, at most the limit, and its shortest
/// form reads back as the same span.
pub fn duration(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(span) = text.parse::<Span>() {
        assert!(span.seconds() > 0 && span.seconds() <= Span::LIMIT_SECONDS);
        let shown = span.to_string();
        assert_eq!(
            shown.parse::<Span>().ok(),
            Some(span),
            "{text:?} shown as {shown}"
        );
    }
}

/// A policy file: never a panic; an accepted catalog parses again to the same hash.
pub fn policy(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(catalog) = Catalog::parse(&text, "fuzz.yaml") {
        let again = Catalog::parse(&text, "fuzz.yaml").expect("parses twice");
        assert_eq!(again.hash(), catalog.hash());
    }
}
