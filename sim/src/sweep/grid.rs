//! The sweep's grid: every combination of the `--vary` axes, each point a scenario loaded with
//! its values as `--set` overrides, all checked before anything runs.

use std::sync::Arc;

use serde_yaml_ng::Value;
use vortex::ConfigError;

use super::{Vary, MAX_POINTS, MAX_SWEEP_SLOTS};
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
    check_axes(base, axes)?;
    let points = grid(axes);
    let scenarios = points
        .into_iter()
        .map(|params| {
            let mut overrides = base.to_vec();
            overrides.extend(params.iter().map(|(k, v)| Override::from_flag("--vary", k, yaml_number(*v))));
            Ok((params, Arc::new(Scenario::load(path, &overrides)?)))
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    let slots: u64 = scenarios.iter().map(|(_, s)| s.slots).sum();
    if slots > MAX_SWEEP_SLOTS {
        return Err(vortex::yaml::invalid(
            "--vary",
            "(grid)",
            format!(
                "{} points of {} slots: {slots} slots in all; a sweep may simulate at most {MAX_SWEEP_SLOTS} \
                 (lower --slots, or coarsen a step)",
                scenarios.len(),
                scenarios[0].1.slots
            ),
        ));
    }
    Ok(scenarios)
}

/// Refuses a grid too large to build (counted before it is built), a key given to two `--vary`
/// flags, and a key given to both `--vary` and `--set` (one would silently win).
pub fn check_axes(base: &[Override], axes: &[Vary]) -> Result<(), ConfigError> {
    let flag = |a: &Vary| format!("--vary {}", a.key);
    for (i, axis) in axes.iter().enumerate() {
        if axes[..i].iter().any(|a| a.key == axis.key) {
            return Err(vortex::yaml::invalid(&flag(axis), &axis.key, "given to --vary twice; vary each key once"));
        }
        if let Some(o) = base.iter().find(|o| o.key == axis.key) {
            return Err(vortex::yaml::invalid(
                &flag(axis),
                &axis.key,
                format!("also set by {}; a key is either varied or set", o.as_given()),
            ));
        }
    }
    let points = axes.iter().try_fold(1usize, |n, a| n.checked_mul(a.values.len()).filter(|&n| n <= MAX_POINTS));
    if points.is_none() {
        let sizes: Vec<String> = axes.iter().map(|a| a.values.len().to_string()).collect();
        return Err(vortex::yaml::invalid(
            "--vary",
            "(grid)",
            format!("{} points; a sweep may have at most {MAX_POINTS}", sizes.join(" × ")),
        ));
    }
    Ok(())
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
