//! `memctl slabinfo`: `/proc/slabinfo` version 2.1, with the kernel's two header lines.

use protocol::ClientId;
use protocol::slabinfo::{write_header, write_row, write_row_as};

use crate::snapshot::Snapshot;

/// The text: every client's caches named `<client>/<cache>`, or only `client`'s with their
/// plain names.
pub fn render(snapshot: &Snapshot, client: Option<ClientId>) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_header(&mut out);
    for row in &snapshot.rows {
        let _ = match client {
            Some(id) if row.client != id => continue,
            Some(_) => write_row(&mut out, row),
            None => write_row_as(&mut out, &format!("{}/{}", snapshot.client_name(row.client), row.name), row),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::ClientView;

    fn row(client: ClientId, name: &str) -> protocol::SlabInfoRow {
        protocol::SlabInfoRow {
            client,
            name: protocol::cache_name(name).unwrap(),
            active_objs: 3,
            num_objs: 64,
            objsize: 64,
            objperslab: 64,
            pagesperslab: 1,
            active_slabs: 1,
            num_slabs: 1,
        }
    }

    fn snapshot() -> Snapshot {
        let view = |id, name: &str| ClientView { id, name: name.into(), stats: Default::default() };
        Snapshot {
            pool_pages: 100,
            pool_free_pages: 90,
            clients: vec![view(1, "app"), view(2, "memctl")],
            rows: vec![row(1, "dentry"), row(2, "kmalloc-8")],
        }
    }

    #[test]
    fn header_is_the_kernels_and_rows_are_qualified_by_client() {
        let text = render(&snapshot(), None);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "slabinfo - version: 2.1");
        assert!(lines[1].starts_with("# name            <active_objs> <num_objs> <objsize>"));
        assert_eq!(
            lines[2],
            "app/dentry             3     64     64   64    1 : tunables    0    0    0 : slabdata      1      1      0"
        );
        assert!(lines[3].starts_with("memctl/kmalloc-8 "));
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn one_client_keeps_plain_names() {
        let text = render(&snapshot(), Some(1));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[2].starts_with("dentry            "));
    }
}
