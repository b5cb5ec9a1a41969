//! Regression snapshots: every shipped scenario at a test-sized slot count, its JSON report
//! compared with the committed insta snapshot. A change in scheduler behaviour shows up here as a
//! reviewed diff (`cargo insta review`, or INSTA_UPDATE=always then `git diff`).
#![cfg(madsim)]

use std::path::Path;
use std::sync::Arc;

use vortex_sim::{Override, Scenario, Simulator};

/// Slots per scenario in the snapshots: enough for every outcome kind to show, quick in debug.
const SNAPSHOT_SLOTS: u64 = 2000;

#[test]
fn every_shipped_scenario_matches_its_snapshot() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    files.sort();
    assert!(files.len() >= 6, "expected the six shipped scenarios, found {files:?}");
    let slots = Override::from_flag("--slots", "slots", SNAPSHOT_SLOTS);
    for path in files {
        let s = Arc::new(Scenario::load(&path, std::slice::from_ref(&slots)).unwrap());
        let report = Simulator::new(s.clone()).run().report();
        insta::assert_snapshot!(s.name.clone(), report.to_json());
    }
}
