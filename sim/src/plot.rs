//! `--plot`: the distribution of total slot latency as an SVG, histogram and CDF, with the
//! deadline and the abort threshold (deadline − buffer) marked.

use plotters::prelude::*;

use crate::report::RunInfo;
use crate::tally::Tally;

/// Histogram bins across the x range.
const BINS: u64 = 80;

/// Renders the plot as SVG text.
pub fn latency_svg(info: &RunInfo, tally: &Tally) -> Result<String, String> {
    let deadline_s = info.deadline_s;
    let threshold_s = deadline_s - info.buffer_s;
    let total = &tally.total;
    let max_s = if total.count() > 0 { total.max_us as f64 / 1e6 } else { 0.0 };
    let x_max = (max_s.max(deadline_s) * 1.05).ceil();
    let bin_us = ((x_max * 1e6) as u64 / BINS).max(1);
    let mut counts = vec![0u64; BINS as usize + 1];
    for v in total.hist.iter_recorded() {
        let bin = (v.value_iterated_to() / bin_us).min(BINS) as usize;
        counts[bin] += v.count_at_value();
    }
    let n = total.count().max(1) as f64;
    let mut cdf = Vec::with_capacity(counts.len());
    let mut running = 0;
    for (i, c) in counts.iter().enumerate() {
        running += c;
        cdf.push(((i as u64 + 1) as f64 * bin_us as f64 / 1e6, running as f64 / n));
    }
    let y_max = counts.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.1;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let caption = format!(
            "{}: total slot latency, {} completed of {} slots (seed {})",
            info.scenario,
            total.count(),
            tally.slots,
            info.seed
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .right_y_label_area_size(50)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(|e| e.to_string())?
            .set_secondary_coord(0f64..x_max, 0f64..1.0);
        chart
            .configure_mesh()
            .x_desc("total latency (s)")
            .y_desc("slots per bin")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .disable_x_mesh()
            .draw()
            .map_err(|e| e.to_string())?;
        chart.configure_secondary_axes().y_desc("CDF").draw().map_err(|e| e.to_string())?;
        let bar_color = RGBColor(70, 130, 180);
        chart
            .draw_series(counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(i, c)| {
                let x0 = i as f64 * bin_us as f64 / 1e6;
                Rectangle::new([(x0, 0.0), (x0 + bin_us as f64 / 1e6, *c as f64)], bar_color.mix(0.7).filled())
            }))
            .map_err(|e| e.to_string())?
            .label("slots per bin")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], bar_color.filled()));
        chart
            .draw_secondary_series(LineSeries::new(cdf, BLACK.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label("CDF (right axis)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], BLACK.stroke_width(2)));
        for (x, color, label) in [
            (deadline_s, RED, format!("deadline {deadline_s} s")),
            (threshold_s, RGBColor(230, 140, 0), format!("abort threshold {threshold_s} s (deadline − buffer)")),
        ] {
            chart
                .draw_series(LineSeries::new(vec![(x, 0.0), (x, y_max)], color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(label)
                .legend(move |(lx, ly)| PathElement::new(vec![(lx, ly), (lx + 14, ly)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Renders a sweep's trade-offs as SVG: deadline-miss rate against false-abort rate (left) and
/// against wasted GPU seconds (right), one marker per point, the Pareto front drawn as a line
/// with filled markers, the recommended point labelled.
pub fn sweep_svg(title: &str, report: &crate::sweep::SweepReport) -> Result<String, String> {
    use crate::sweep::{pareto_front, Point};
    let points = &report.points;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1200, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root.titled(title, ("sans-serif", 20)).map_err(|e| e.to_string())?;
        let panels = root.split_evenly((1, 2));
        type Axis = fn(&Point) -> f64;
        let axes: [(&str, Axis); 2] =
            [("false-abort rate (%)", |p| p.rates.false_abort * 100.0), ("wasted GPU (s)", |p| p.wasted_gpu_s)];
        for (panel, (x_desc, x)) in panels.iter().zip(axes) {
            let xs: Vec<f64> = points.iter().map(x).collect();
            let ys: Vec<f64> = points.iter().map(|p| p.rates.deadline_miss * 100.0).collect();
            let pad = |lo: f64, hi: f64| {
                let span = (hi - lo).max(1e-6);
                (lo - span * 0.08, hi + span * 0.15)
            };
            let (x0, x1) = pad(
                xs.iter().copied().fold(f64::INFINITY, f64::min),
                xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            );
            let (y0, y1) = pad(
                ys.iter().copied().fold(f64::INFINITY, f64::min),
                ys.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            );
            let mut chart = ChartBuilder::on(panel)
                .margin(14)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|e| e.to_string())?;
            chart.configure_mesh().x_desc(x_desc).y_desc("deadline-miss rate (%)").draw().map_err(|e| e.to_string())?;
            let grey = RGBColor(120, 120, 120);
            chart
                .draw_series(xs.iter().zip(&ys).map(|(&a, &b)| Circle::new((a, b), 4, grey.stroke_width(1))))
                .map_err(|e| e.to_string())?
                .label("grid point")
                .legend(move |(lx, ly)| Circle::new((lx + 6, ly), 4, grey.stroke_width(1)));
            if points.len() <= 40 {
                // Few enough points to name each by its values.
                let small = ("sans-serif", 11).into_font().color(&grey);
                chart
                    .draw_series(points.iter().zip(xs.iter().zip(&ys)).map(|(p, (&a, &b))| {
                        let values: Vec<String> = p.params.iter().map(|(_, v)| v.to_string()).collect();
                        Text::new(values.join(","), (a, b), small.clone())
                    }))
                    .map_err(|e| e.to_string())?;
            }
            let front = pareto_front(points, x);
            let blue = RGBColor(30, 100, 200);
            let line: Vec<(f64, f64)> = front.iter().map(|&i| (xs[i], ys[i])).collect();
            chart
                .draw_series(LineSeries::new(line.clone(), blue.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label("Pareto front")
                .legend(move |(lx, ly)| PathElement::new(vec![(lx, ly), (lx + 14, ly)], blue.stroke_width(2)));
            chart
                .draw_series(line.iter().map(|&(a, b)| Circle::new((a, b), 5, blue.filled())))
                .map_err(|e| e.to_string())?;
            if let Some(best) = &report.best {
                let i = points.iter().position(|p| p == best).expect("best is a grid point");
                let label: Vec<String> =
                    best.params.iter().map(|(k, v)| format!("{}={v}", k.rsplit('.').next().unwrap_or(k))).collect();
                chart
                    .draw_series([EmptyElement::at((xs[i], ys[i]))
                        + Circle::new((0, 0), 8, RED.stroke_width(2))
                        + Text::new(
                            format!("best: {}", label.join(" ")),
                            (10, -14),
                            ("sans-serif", 14).into_font().color(&RED),
                        )])
                    .map_err(|e| e.to_string())?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}
