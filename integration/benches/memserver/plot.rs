//! The README's plot: ops/s of every loadgen run (workload, clients × threads), memserver
//! beside glibc and mimalloc, as grouped bars (SVG, plotters).

use std::path::Path;

use plotters::prelude::*;

use crate::loadgen::Run;

/// The configurations drawn, with their colours.
const SERIES: [(&str, RGBColor); 3] = [
    ("memserver", RGBColor(0x1f, 0x77, 0xb4)),
    ("glibc", RGBColor(0x2c, 0xa0, 0x2c)),
    ("mimalloc", RGBColor(0xd6, 0x27, 0x28)),
];

/// Writes the bar chart to `path`.
pub fn write(runs: &[Run], path: &Path) -> Result<(), String> {
    let value = |run: &Run, name: &str| run.total(name)["ops_per_sec"].as_f64().unwrap_or(0.0) / 1e6;
    let top = runs.iter().flat_map(|r| SERIES.iter().map(move |(name, _)| value(r, name))).fold(1.0, f64::max) * 1.15;
    let groups = runs.len().max(1) as f64;
    let root = SVGBackend::new(path, (960, 480)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| format!("plot {}: {e:?}", path.display());
    root.fill(&WHITE).map_err(e)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("loadgen: operations per second (millions), same operation sequence", ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..groups, 0.0..top)
        .map_err(e)?;
    let labels: Vec<String> = runs.iter().map(|r| format!("{} {}c×{}t", r.workload, r.clients, r.threads)).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(runs.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 { labels.get(i).cloned().unwrap_or_default() } else { String::new() }
        })
        .y_desc("M ops/s")
        .draw()
        .map_err(e)?;
    let width = 0.8 / SERIES.len() as f64;
    for (s, (name, color)) in SERIES.iter().enumerate() {
        let bars = runs.iter().enumerate().map(|(i, run)| {
            let x0 = i as f64 + 0.1 + s as f64 * width;
            Rectangle::new([(x0, 0.0), (x0 + width * 0.9, value(run, name))], color.filled())
        });
        chart
            .draw_series(bars)
            .map_err(e)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}
