//! The committed `clients/c/include/memclient.h` is exactly what the source generates.

#[test]
fn committed_header_matches_the_generated_one() {
    let generated = memclient_header::generate().unwrap();
    let path = memclient_header::committed_header();
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} differs from the header the source generates: run `make c-header` and commit it",
        path.display()
    );
}

#[test]
fn generating_twice_gives_the_same_bytes() {
    assert_eq!(memclient_header::generate().unwrap(), memclient_header::generate().unwrap());
}
