//! The sweep's grid: every combination of the `--vary` axes, each point a scenario loaded with
//! its values as `--set` overrides, all checked before anything runs.

use std::sync::Arc;

use serde_yaml_ng::Value;
use vortex::ConfigError;

use super::{Vary, MAX_POINTS};
use crate::scenario::{Override, Scenario};

/// One grid point's parameter values, in `--vary` order.
pub type Params = Vec<(String, f64)>;

/// The grid: every combination of the axes' values.
pub fn grid(axes: &[Vary]) -> Vec<Params> {
    let mut points = vec![Vec::new()];
    for axis in axes {
        points = points
            .into_iter()
            .flat_map(|p| axis.values.iter().map(move |&v| [p.clone(), vec![(axis.key.clone(), v)]].concat()))
            .collect();
    }
    points
}

/// Loads the scenario for every grid point up front, so a bad key or value fails before any run.
pub fn scenarios(
    path: &std::path::Path,
    base: &[Override],
    axes: &[Vary],
) -> Result<Vec<(Params, Arc<Scenario>)>, ConfigError> {
    let points = grid(axes);
    if points.len() > MAX_POINTS {
        return Err(vortex::yaml::invalid(
            &path.display().to_string(),
            "--vary",
            format!("{} points; a sweep may have at most {MAX_POINTS}", points.len()),
        ));
    }
    points
        .into_iter()
        .map(|params| {
            let mut overrides = base.to_vec();
            overrides.extend(params.iter().map(|(k, v)| Override { key: k.clone(), value: yaml_number(*v) }));
            Ok((params, Arc::new(Scenario::load(path, &overrides)?)))
        })
        .collect()
}

/// A whole number as a YAML integer (so integer keys such as `adaptive.history` can vary too),
/// anything else as a float.
pub(crate) fn yaml_number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        Value::from(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_is_the_cartesian_product_first_axis_slowest() {
        let a = Vary { key: "a".into(), values: vec![1.0, 2.0] };
        let b = Vary { key: "b".into(), values: vec![10.0, 20.0, 30.0] };
        let g = grid(&[a, b]);
        assert_eq!(g.len(), 6);
        assert_eq!(g[0], [("a".to_string(), 1.0), ("b".to_string(), 10.0)]);
        assert_eq!(g[5], [("a".to_string(), 2.0), ("b".to_string(), 30.0)]);
    }
}
