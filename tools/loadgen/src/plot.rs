//! `--plot FILE.svg`: the latency CDF of every configuration (all clients merged), one line
//! each, on a logarithmic time axis.

use std::path::Path;

use plotters::prelude::*;

use crate::report::Report;

const COLORS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// (latency ns, fraction of operations at or below it) of one histogram.
fn cdf(hist: &[(u64, u64)]) -> Vec<(f64, f64)> {
    let total: u64 = hist.iter().map(|&(_, c)| c).sum();
    let mut seen = 0u64;
    let mut points = Vec::with_capacity(hist.len());
    for &(value, count) in hist {
        seen += count;
        points.push((value.max(1) as f64, seen as f64 / total.max(1) as f64));
    }
    points
}

/// Writes the SVG.
pub fn write(report: &Report, path: &Path) -> Result<(), String> {
    let series: Vec<(String, Vec<(f64, f64)>)> = report
        .configs
        .iter()
        .map(|c| (c.name.clone(), cdf(&c.total.histogram)))
        .filter(|(_, points)| !points.is_empty())
        .collect();
    let lo = series.iter().flat_map(|(_, p)| p.first()).map(|p| p.0).fold(f64::INFINITY, f64::min);
    let hi = series.iter().flat_map(|(_, p)| p.last()).map(|p| p.0).fold(1.0, f64::max);
    let lo = if lo.is_finite() { (lo / 1.5).max(1.0) } else { 1.0 };
    let hi = (hi * 1.5).max(lo * 10.0);

    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| format!("plot {}: {e:?}", path.display());
    root.fill(&WHITE).map_err(e)?;
    let title = format!(
        "loadgen {}: latency CDF ({} client{}, {} thread{}, seed {})",
        report.workload,
        report.clients,
        if report.clients == 1 { "" } else { "s" },
        report.threads,
        if report.threads == 1 { "" } else { "s" },
        report.seed
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..1f64)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("latency of one operation (ns, sampled)")
        .y_desc("fraction of operations")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(e)?;
    for (i, (name, points)) in series.into_iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(e)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}
