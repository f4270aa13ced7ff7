//! `memctl top`: a refreshing slabtop-like view of every client's caches, sorted by the memory
//! their slabs take, drawn with ratatui on crossterm. `q` (or Esc, or Ctrl-C) quits.

use std::time::{Duration, Instant};

use memclient::Memserver;
use memclient::host::Connection;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};
use ratatui::{DefaultTerminal, Frame};

use crate::snapshot::{Snapshot, cache_bytes};

/// Runs the view until the user quits or the server goes away.
pub fn run(server: &Memserver<Connection>, name: &str, interval: Duration) -> Result<(), String> {
    let first = Snapshot::take(server).map_err(|e| crate::query_error(name, e))?;
    let mut terminal = ratatui::try_init().map_err(|e| format!("cannot start the terminal view: {e}"))?;
    let result = view(&mut terminal, server, first, interval);
    ratatui::restore();
    result
}

fn view(
    terminal: &mut DefaultTerminal,
    server: &Memserver<Connection>,
    mut snapshot: Snapshot,
    interval: Duration,
) -> Result<(), String> {
    loop {
        terminal.draw(|frame| draw(frame, &snapshot)).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + interval;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if !event::poll(left).map_err(|e| e.to_string())? {
                break;
            }
            match event::read().map_err(|e| e.to_string())? {
                Event::Key(key) if key.kind == KeyEventKind::Press => {
                    let ctrl_c = key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
                    if matches!(key.code, KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc) || ctrl_c {
                        return Ok(());
                    }
                }
                Event::Resize(..) => {
                    terminal.draw(|frame| draw(frame, &snapshot)).map_err(|e| e.to_string())?;
                }
                _ => {}
            }
        }
        snapshot = Snapshot::take(server).map_err(|e| format!("lost the server: {e}"))?;
    }
}

/// One table line: a cache, with slabtop's columns.
#[derive(Clone, Debug, PartialEq)]
pub struct TopRow {
    pub objs: u32,
    pub active: u32,
    pub use_pct: u32,
    pub obj_size: u32,
    pub slabs: u32,
    pub obj_per_slab: u32,
    pub cache_bytes: u64,
    pub client: String,
    pub name: String,
}

/// Every cache, largest first (then by client and name, so the order is stable).
pub fn rows(snapshot: &Snapshot) -> Vec<TopRow> {
    let mut rows: Vec<TopRow> = snapshot
        .rows
        .iter()
        .map(|r| TopRow {
            objs: r.num_objs,
            active: r.active_objs,
            use_pct: if r.num_objs == 0 { 0 } else { (u64::from(r.active_objs) * 100 / u64::from(r.num_objs)) as u32 },
            obj_size: r.objsize,
            slabs: r.num_slabs,
            obj_per_slab: r.objperslab,
            cache_bytes: cache_bytes(r),
            client: snapshot.client_name(r.client),
            name: r.name.as_str().to_string(),
        })
        .collect();
    rows.sort_by(|a, b| {
        b.cache_bytes.cmp(&a.cache_bytes).then_with(|| (&a.client, &a.name).cmp(&(&b.client, &b.name)))
    });
    rows
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 }
}

fn kib(bytes: u64) -> String {
    format!("{:.2}K", bytes as f64 / 1024.0)
}

/// slabtop's summary lines, then the pool and the magazine hit rate.
pub fn summary(snapshot: &Snapshot) -> Vec<String> {
    let r = &snapshot.rows;
    let sum = |f: fn(&protocol::SlabInfoRow) -> u64| r.iter().map(f).sum::<u64>();
    let (active_objs, objs) = (sum(|r| r.active_objs.into()), sum(|r| r.num_objs.into()));
    let (active_slabs, slabs) = (sum(|r| r.active_slabs.into()), sum(|r| r.num_slabs.into()));
    let active_caches = r.iter().filter(|r| r.active_objs > 0).count() as u64;
    let active_size = sum(|r| u64::from(r.active_objs) * u64::from(r.objsize));
    let size = sum(|r| u64::from(r.num_objs) * u64::from(r.objsize));
    let min = r.iter().map(|r| u64::from(r.objsize)).min().unwrap_or(0);
    let max = r.iter().map(|r| u64::from(r.objsize)).max().unwrap_or(0);
    let avg = size.checked_div(objs).unwrap_or(0);
    let used = snapshot.pool_pages.saturating_sub(snapshot.pool_free_pages);
    let (hits, misses) = snapshot.clients.iter().fold((0u64, 0u64), |(h, m), c| {
        (
            h.saturating_add(c.stats.alloc_hits).saturating_add(c.stats.free_hits),
            m.saturating_add(c.stats.magazine_misses),
        )
    });
    vec![
        format!(" Active / Total Objects (% used)    : {active_objs} / {objs} ({:.1}%)", pct(active_objs, objs)),
        format!(" Active / Total Slabs (% used)      : {active_slabs} / {slabs} ({:.1}%)", pct(active_slabs, slabs)),
        format!(
            " Active / Total Caches (% used)     : {active_caches} / {} ({:.1}%)",
            r.len(),
            pct(active_caches, r.len() as u64)
        ),
        format!(
            " Active / Total Size (% used)       : {} / {} ({:.1}%)",
            kib(active_size),
            kib(size),
            pct(active_size, size)
        ),
        format!(" Minimum / Average / Maximum Object : {} / {} / {}", kib(min), kib(avg), kib(max)),
        format!(
            " Pool pages used / total            : {used} / {} ({:.1}%), {} clients, magazine hit rate {:.1}%",
            snapshot.pool_pages,
            pct(used.into(), snapshot.pool_pages.into()),
            snapshot.clients.len(),
            pct(hits, hits.saturating_add(misses))
        ),
    ]
}

/// Draws one frame: the summary, then the caches table.
pub fn draw(frame: &mut Frame, snapshot: &Snapshot) {
    let lines = summary(snapshot);
    let [top, bottom] =
        Layout::vertical([Constraint::Length(lines.len() as u16 + 2), Constraint::Min(0)]).areas(frame.area());
    let title = " memctl top — q quits ";
    frame.render_widget(Paragraph::new(lines.join("\n")).block(Block::bordered().title(title)), top);
    let titles = ["OBJS", "ACTIVE", "USE", "OBJ SIZE", "SLABS", "OBJ/SLAB", "CACHE SIZE"];
    let header = Row::new(
        titles
            .map(|t| Cell::from(Line::from(t).right_aligned()))
            .into_iter()
            .chain([Cell::from("CLIENT"), Cell::from("NAME")]),
    )
    .style(Style::default().add_modifier(Modifier::REVERSED));
    let right = |s: String| Cell::from(Line::from(s).right_aligned());
    let body = rows(snapshot).into_iter().map(|r| {
        Row::new([
            right(r.objs.to_string()),
            right(r.active.to_string()),
            right(format!("{}%", r.use_pct)),
            right(kib(r.obj_size.into())),
            right(r.slabs.to_string()),
            right(r.obj_per_slab.to_string()),
            right(format!("{}K", r.cache_bytes / 1024)),
            Cell::from(r.client),
            Cell::from(r.name),
        ])
    });
    let widths = [
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Length(9),
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Length(11),
        Constraint::Length(16),
        Constraint::Min(10),
    ];
    frame.render_widget(Table::new(body, widths).header(header), bottom);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::ClientView;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn row(client: u16, name: &str, slabs: u32, pages: u32) -> protocol::SlabInfoRow {
        protocol::SlabInfoRow {
            client,
            name: protocol::cache_name(name).unwrap(),
            active_objs: 10,
            num_objs: 20 * slabs,
            objsize: 128,
            objperslab: 20,
            pagesperslab: pages,
            active_slabs: 1,
            num_slabs: slabs,
        }
    }

    fn snapshot() -> Snapshot {
        let view = |id, name: &str| ClientView { id, name: name.into(), stats: Default::default() };
        Snapshot {
            pool_pages: 1000,
            pool_free_pages: 900,
            clients: vec![view(1, "app"), view(3, "loadgen-0")],
            rows: vec![row(1, "small", 1, 1), row(3, "big", 4, 2), row(1, "middle", 2, 1)],
        }
    }

    #[test]
    fn rows_are_sorted_by_memory() {
        let names: Vec<String> = rows(&snapshot()).into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["big", "middle", "small"]);
        assert_eq!(rows(&snapshot())[0].cache_bytes, 8 * 4096);
        assert_eq!(rows(&snapshot())[0].client, "loadgen-0");
    }

    #[test]
    fn frame_shows_summary_and_table() {
        let mut terminal = Terminal::new(TestBackend::new(120, 20)).unwrap();
        terminal.draw(|f| draw(f, &snapshot())).unwrap();
        let text: String = terminal.backend().buffer().content().iter().map(|c| c.symbol()).collect();
        assert!(text.contains("Active / Total Objects (% used)    : 30 / 140 (21.4%)"), "{text}");
        assert!(text.contains("CACHE SIZE"));
        let big = text.find("big").unwrap();
        let small = text.find("small").unwrap();
        assert!(big < small, "not sorted by size");
    }
}
