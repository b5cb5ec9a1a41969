//! How a sweep reads: a table with one row per point and the recommendation, a ready-to-paste
//! `orchestration:` snippet, and JSON (`--json`, the same for a whole sweep and a merge of its
//! shards).

use serde_yaml_ng::Value;

use super::grid::yaml_number;
use super::{Objective, Point, SweepReport};
use crate::scenario::Override;

/// The best point's orchestration keys, with the `--set` orchestration keys the sweep ran under,
/// as a ready-to-paste `orchestration:` YAML snippet; and the varied keys that are not config keys.
pub fn config_snippet(best: &Point, set: &[Override]) -> (String, Vec<String>) {
    let mut root = Value::Mapping(Default::default());
    let mut other = Vec::new();
    let fixed = set.iter().map(|o| (o.key.as_str(), o.value.clone()));
    let varied = best.params.iter().map(|(k, v)| (k.as_str(), yaml_number(*v)));
    let mut any = false;
    for (key, value) in fixed.chain(varied) {
        let Some(path) = key.strip_prefix("orchestration.") else {
            if let Some((_, v)) = best.params.iter().find(|(k, _)| k == key) {
                other.push(format!("{key}={v}"));
            }
            continue;
        };
        any = true;
        let mut node = &mut root;
        for part in std::iter::once("orchestration").chain(path.split('.')) {
            let Value::Mapping(map) = node else { unreachable!("only maps are created on the way") };
            node = map.entry(Value::from(part)).or_insert_with(|| Value::Mapping(Default::default()));
        }
        *node = value;
    }
    let yaml = if any { serde_yaml_ng::to_string(&root).expect("plain YAML") } else { String::new() };
    (yaml, other)
}

impl SweepReport {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a sweep report always serializes") + "\n"
    }

    /// One row per point, then the recommendation.
    pub fn to_table(&self, objective: &Objective, set: &[Override]) -> String {
        use std::fmt::Write as _;
        let mut t = String::new();
        let Some(first) = self.points.first() else { return t };
        let keys: Vec<&str> = first.params.iter().map(|(k, _)| k.rsplit('.').next().unwrap_or(k)).collect();
        let pct = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:.2}%", v * 100.0));
        let ms = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.0}"));
        for k in &keys {
            let _ = write!(t, "{k:>18} ");
        }
        let _ = writeln!(
            t,
            "{:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>17} {:>10}",
            "on_time", "miss", "abort", "f_abort", "precision", "p99_ms", "p99 95% CI", "wasted_s"
        );
        for p in &self.points {
            for (_, v) in &p.params {
                let _ = write!(t, "{v:>18} ");
            }
            let total = &p.latency_ms.total;
            let marker = if self.best.as_ref() == Some(p) { "  <- best" } else { "" };
            let _ = writeln!(
                t,
                "{:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>17} {:>10.1}{marker}",
                pct(Some(p.rates.on_time)),
                pct(Some(p.rates.deadline_miss)),
                pct(Some(p.rates.abort)),
                pct(Some(p.rates.false_abort)),
                pct(p.rates.abort_precision),
                ms(total.p99),
                format!("[{}, {}]", ms(total.p99_ci95[0]), ms(total.p99_ci95[1])),
                p.wasted_gpu_s
            );
        }
        let _ = writeln!(t);
        match &self.best {
            None => {
                let _ =
                    writeln!(t, "objective {objective}: no point meets the constraints; widen the grid or relax them.");
            }
            Some(best) => {
                let params: Vec<String> = best.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let value = objective.metric.of(best).map_or("-".into(), |v| format!("{v}"));
                let _ = writeln!(
                    t,
                    "objective {objective}: best point {} ({} = {value})",
                    params.join(" "),
                    objective.metric
                );
                let (yaml, other) = config_snippet(best, set);
                if !yaml.is_empty() {
                    let _ = writeln!(t, "\n# paste into config.yaml (or a scenario's orchestration section):\n{yaml}");
                }
                if !other.is_empty() {
                    let _ = writeln!(t, "# scenario keys of the best point (not config): {}", other.join(" "));
                }
            }
        }
        t
    }
}
