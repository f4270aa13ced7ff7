//! `docs/protocol.md` agrees with the interface definition (`protocol::api::REQUESTS`): its
//! requests table has one row per request in wire order with the same fields, reply and
//! declared errors, and its replies table says which requests each reply answers. A request
//! added to the interface without a row, or a row that drifts from the definition, fails here.

use std::path::PathBuf;

use protocol::api::{REQUESTS, RequestInfo};

fn protocol_md() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The cells of the table that follows `heading` (header and separator rows skipped; no cell
/// of these tables holds a `|`).
fn table(doc: &str, heading: &str) -> Vec<Vec<String>> {
    let section = doc.split_once(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("no {heading:?}")).1;
    section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| l.trim().strip_prefix('|').and_then(|l| l.strip_suffix('|')).unwrap_or(l))
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect()
}

/// `cell` without its notes in parentheses.
fn without_notes(cell: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in cell.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The identifier each `code` span of `cell` starts with (`CacheBusy { live }` → `CacheBusy`,
/// `version: u16` → `version`), notes in parentheses left out.
fn names(cell: &str) -> Vec<String> {
    without_notes(cell)
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|span| span.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect())
        .collect()
}

fn declared(info: &RequestInfo) -> Vec<String> {
    info.errors.iter().map(|e| format!("{e:?}")).collect()
}

#[test]
fn the_requests_table_is_the_interface() {
    let rows = table(&protocol_md(), "## Requests");
    let documented: Vec<&str> = rows.iter().map(|r| r[1].trim_matches('`')).collect();
    let defined: Vec<&str> = REQUESTS.iter().map(|r| r.name).collect();
    assert_eq!(documented, defined, "docs/protocol.md's requests table: rows, in wire order");
    for (index, (row, info)) in rows.iter().zip(REQUESTS).enumerate() {
        assert_eq!(row.len(), 6, "{}: expected 6 cells: {row:?}", info.name);
        assert_eq!(row[0], index.to_string(), "{}: index", info.name);
        assert_eq!(names(&row[2]), info.fields, "{}: fields", info.name);
        assert_eq!(row[3].trim_matches('`'), info.reply, "{}: reply", info.name);
        assert_eq!(names(&row[4]), declared(info), "{}: errors (as declared, in order)", info.name);
    }
}

#[test]
fn the_replies_table_names_the_requests_each_reply_answers() {
    let rows = table(&protocol_md(), "## Replies");
    for row in rows.iter().filter(|r| r[1] != "`Error`") {
        let reply = row[1].trim_matches('`');
        let answered: Vec<&str> = REQUESTS.iter().filter(|r| r.reply == reply).map(|r| r.name).collect();
        assert_eq!(names(&row[3]), answered, "reply {reply}: the requests it answers");
    }
    for info in REQUESTS {
        assert!(
            rows.iter().any(|r| r[1].trim_matches('`') == info.reply),
            "{}: reply {} not documented",
            info.name,
            info.reply
        );
    }
}

/// The parser itself: notes and field types are left out, names kept in order.
#[test]
fn cells_are_read_as_names() {
    assert_eq!(names("`NoSuchCache`, `CacheBusy { live }` (the `cache` is left intact)"), ["NoSuchCache", "CacheBusy"]);
    assert_eq!(names("`version: u16`, `client_name: String≤31`"), ["version", "client_name"]);
    assert!(names("").is_empty());
}
