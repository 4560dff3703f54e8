//! PNG plots with `plotters`' bitmap backend. Text is drawn with `ab_glyph` from a font
//! embedded by the `epaint_default_fonts` crate (Ubuntu Light), so no system font library
//! (fontconfig, freetype) is needed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

const FONT: &str = "sans-serif";

fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        register_font(FONT, FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT)
            .unwrap_or_else(|_| panic!("the embedded Ubuntu Light font is a valid TrueType font"));
    });
}

fn plot_err(path: &Path) -> impl Fn(String) -> anyhow::Error + '_ {
    move |e| anyhow!("cannot draw {}: {e}", path.display())
}

/// Line plot of one or more named series of `(x, y)` points; `axes` are the axis titles.
pub fn line_plot(
    path: &Path,
    title: &str,
    axes: (&str, &str),
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<()> {
    register_fonts();
    let err = plot_err(path);
    let points = series.iter().flat_map(|(_, s)| s.iter());
    let (mut x_min, mut x_max) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut y_min, mut y_max) = (f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points.filter(|(_, y)| y.is_finite()) {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if !y_min.is_finite() {
        (x_min, x_max, y_min, y_max) = (0.0, 1.0, 0.0, 1.0);
    }
    if x_max <= x_min {
        x_max = x_min + 1.0;
    }
    let pad = ((y_max - y_min) * 0.05).max(1e-6);
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x_min..x_max, (y_min - pad)..(y_max + pad))
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc(axes.0)
        .y_desc(axes.1)
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    for (i, (name, s)) in series.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(s.iter().copied(), colour.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))
}

/// Scatter plot of 2-D points coloured by label (one legend entry per label).
pub fn scatter_by_label(
    path: &Path,
    title: &str,
    axes: (&str, &str),
    points: &[(f32, f32)],
    labels: &[String],
) -> Result<()> {
    register_fonts();
    let err = plot_err(path);
    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for &(x, y) in points {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    let (px, py) = (((x1 - x0) * 0.05).max(1e-3), ((y1 - y0) * 0.05).max(1e-3));
    let mut groups: BTreeMap<&str, Vec<(f32, f32)>> = BTreeMap::new();
    for (p, l) in points.iter().zip(labels) {
        groups.entry(l.as_str()).or_default().push(*p);
    }
    let root = BitMapBackend::new(path, (1100, 760)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((x0 - px)..(x1 + px), (y0 - py)..(y1 + py))
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc(axes.0)
        .y_desc(axes.1)
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    for (i, (label, pts)) in groups.into_iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        chart
            .draw_series(
                pts.iter()
                    .map(|&(x, y)| Circle::new((x, y), 3, colour.mix(0.8).filled())),
            )
            .map_err(|e| err(e.to_string()))?
            .label(format!("{label} ({})", pts.len()))
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))
}

/// Side-by-side scatter panels of `(x, y)` points, each with the identity line `y = x` over
/// its range (for comparing simulated with observed summaries).
pub fn identity_panels(path: &Path, title: &str, panels: &[(&str, Vec<(f64, f64)>)]) -> Result<()> {
    register_fonts();
    let err = plot_err(path);
    let root =
        BitMapBackend::new(path, (480 * panels.len().max(1) as u32, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let root = root
        .titled(title, (FONT, 22))
        .map_err(|e| err(e.to_string()))?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, (name, points)) in areas.iter().zip(panels) {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &(x, y) in points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
        {
            lo = lo.min(x.min(y));
            hi = hi.max(x.max(y));
        }
        if !(lo.is_finite() && hi > lo) {
            (lo, hi) = (0.0, 1.0);
        }
        let pad = (hi - lo) * 0.04;
        let range = (lo - pad)..(hi + pad);
        let mut chart = ChartBuilder::on(area)
            .caption(*name, (FONT, 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(50)
            .build_cartesian_2d(range.clone(), range)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .label_style((FONT, 13))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(LineSeries::new([(lo, lo), (hi, hi)], BLACK.stroke_width(1)))
            .map_err(|e| err(e.to_string()))?;
        let colour = Palette99::pick(0).to_rgba();
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 2, colour.mix(0.5).filled())),
            )
            .map_err(|e| err(e.to_string()))?;
    }
    root.present().map_err(|e| err(e.to_string()))
}
