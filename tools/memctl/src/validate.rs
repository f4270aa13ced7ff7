//! `memctl validate CLIENT CACHE`: Linux's `echo 1 > /sys/kernel/slab/<cache>/validate`
//! (`validate_slab_cache()`): the server checks every object of every slab of the cache, repairs
//! what it reports, and memctl prints what it found.

use std::fmt::Write as _;

use protocol::{Finding, ValidationReport};

/// The report as text: one summary line, then the first corruption if any.
pub fn render(client: &str, cache: &str, report: &ValidationReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{client}/{cache}: {} slabs, {} objects checked, {} error{} found and repaired",
        report.slabs,
        report.objects,
        report.errors,
        if report.errors == 1 { "" } else { "s" }
    );
    if let Some(finding) = &report.first {
        let (what, c) = match finding {
            Finding::RedZone(c) => ("red zone overwritten", c),
            Finding::Poison(c) => ("poison overwritten", c),
        };
        let _ = writeln!(
            out,
            "first: {what} in object {:#x} at offset {}: {:#04x} instead of {:#04x}",
            c.object.0, c.offset, c.found, c.expected
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{CacheId, Corruption, Handle};

    #[test]
    fn a_clean_cache_is_one_line_and_a_corruption_is_described() {
        let clean = ValidationReport { slabs: 2, objects: 128, errors: 0, first: None };
        assert_eq!(
            render("app", "dentry", &clean),
            "app/dentry: 2 slabs, 128 objects checked, 0 errors found and repaired\n"
        );
        let c = Corruption { cache: CacheId(7), object: Handle(0x1040), offset: 18, found: 0x00, expected: 0xcc };
        let bad = ValidationReport { slabs: 1, objects: 64, errors: 1, first: Some(Finding::RedZone(c)) };
        let text = render("app", "kmalloc-32", &bad);
        assert!(text.starts_with("app/kmalloc-32: 1 slabs, 64 objects checked, 1 error found"), "{text}");
        assert!(
            text.ends_with("first: red zone overwritten in object 0x1040 at offset 18: 0x00 instead of 0xcc\n"),
            "{text}"
        );
    }
}
