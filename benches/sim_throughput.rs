//! Simulated slots per second for `rtx3060-nominal`, against a plain Monte Carlo loop (no async
//! runtime) that computes the same outcomes from the same draws: the floor, measured in the same
//! run. Run with `cargo sim-bench`; figures go to docs/benchmarks.md.

#[cfg(not(madsim))]
fn main() {
    eprintln!("this benchmark needs the simulator build: run `cargo sim-bench`");
}

#[cfg(madsim)]
fn main() {
    bench::main();
}

#[cfg(madsim)]
mod bench {
    use std::hint::black_box;
    use std::path::Path;
    use std::sync::Arc;

    use criterion::{Criterion, Throughput};
    use vortex_sim::montecarlo::MonteCarlo;
    use vortex_sim::{Override, Scenario, Simulator, SlotKind};

    const SLOTS: u64 = 20_000;

    fn scenario() -> Arc<Scenario> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/rtx3060-nominal.yaml");
        Arc::new(Scenario::load(&path, &[Override::from_flag("--slots", "slots", SLOTS)]).unwrap())
    }

    pub fn main() {
        let s = scenario();
        let mut c = Criterion::default().sample_size(10).configure_from_args();
        let mut group = c.benchmark_group("rtx3060-nominal");
        group.throughput(Throughput::Elements(SLOTS));
        let one = Simulator::new(s.clone()).workers(1);
        group.bench_function("simulator, 1 worker", |b| b.iter(|| black_box(one.run())));
        let all = Simulator::new(s.clone()).workers(0);
        group.bench_function("simulator, all cores", |b| b.iter(|| black_box(all.run())));
        group.bench_function("monte carlo floor, 1 core", |b| {
            let mc = MonteCarlo::new(&s);
            b.iter(|| {
                let mut on_time = 0u64;
                for slot in 0..SLOTS {
                    let out = mc.slot(slot, true);
                    // The simulator also runs each aborted slot's counterfactual.
                    if matches!(out.kind, SlotKind::Aborted(_)) {
                        black_box(mc.slot(slot, false));
                    }
                    on_time += u64::from(out.kind == SlotKind::OnTime);
                }
                black_box(on_time)
            })
        });
        group.finish();
        c.final_summary();
    }
}
