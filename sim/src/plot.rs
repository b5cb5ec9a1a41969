//! `--plot`: the distribution of total slot latency as an SVG, histogram and CDF, with the
//! deadline and the abort threshold (deadline − buffer) marked.

use plotters::prelude::*;

use crate::scenario::Scenario;
use crate::tally::Tally;

/// Histogram bins across the x range.
const BINS: u64 = 80;

/// Renders the plot as SVG text.
pub fn latency_svg(scenario: &Scenario, tally: &Tally) -> Result<String, String> {
    let deadline_s = scenario.deadline.as_secs_f64();
    let threshold_s = deadline_s - scenario.config.orchestration.deadline_buffer_s.get();
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
            scenario.name,
            total.count(),
            tally.slots,
            scenario.seed
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
