//! The same slot outcomes, computed without an async runtime: a plain event loop over the same
//! keyed draws as [`crate::SimStages`] and the scheduler's rules (static predictor only).
//!
//! It is written independently of the scheduler, from the rules in `docs/architecture.md`, so it
//! serves twice: as the floor of the throughput benchmark (how fast the outcomes could be had
//! with no runtime at all) and as an independent check of the simulator in the tests.

use vortex::{Checkpoint, Stage};

use crate::scenario::Scenario;
use crate::stages::{clip_passes, Plan};
use crate::tally::SlotKind;

/// One slot as the Monte Carlo loop sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct McSlot {
    /// How it ended.
    pub kind: SlotKind,
    /// When it ended, seconds after its start.
    pub end_s: f64,
    /// For completed slots: the self-check failed.
    pub clip_rejected: bool,
}

/// The scenario's policy as plain seconds.
#[derive(Debug, Clone)]
pub struct MonteCarlo<'a> {
    scenario: &'a Scenario,
    deadline: f64,
    buffer: f64,
    backoff_base: f64,
    timeouts: [f64; 4],
    targets: [f64; 4],
    retries: [u32; 4],
    slowdown: f64,
}

enum Lane {
    Running { attempt: u32, plan: Plan, remaining: f64, timeout_at: f64, capped: bool },
    Backoff { attempt: u32, until: f64 },
    Done,
}

#[derive(Clone, Copy, PartialEq)]
enum Event {
    Finish,
    Timeout,
    Start,
}

impl<'a> MonteCarlo<'a> {
    /// Prepares the loop for a scenario.
    pub fn new(scenario: &'a Scenario) -> Self {
        let o = &scenario.orchestration;
        let per = |f: &dyn Fn(Stage) -> f64| Stage::ALL.map(f);
        MonteCarlo {
            scenario,
            deadline: scenario.deadline.as_secs_f64(),
            buffer: o.deadline_buffer_s.get(),
            backoff_base: o.backoff_base_s.get(),
            timeouts: per(&|s| o.timeouts.get(s).get()),
            targets: per(&|s| o.targets.get(s).get()),
            retries: Stage::ALL.map(|s| o.retry_policy.get(s).get()),
            slowdown: scenario.gpu.parallel_slowdown,
        }
    }

    /// The outcome of slot `slot`; `aborts` false computes the counterfactual of an aborted slot.
    pub fn slot(&self, slot: u64, aborts: bool) -> McSlot {
        let stop = |kind, end_s| McSlot { kind, end_s, clip_rejected: false };
        let t = 0.0;
        let remaining_all = self.targets[0].max(self.targets[1]) + self.targets[2] + self.targets[3];
        if aborts && !self.fits(t, remaining_all) {
            return stop(SlotKind::Aborted(Checkpoint::BeforeStart.into()), t);
        }
        let t = match self.lanes(slot, &[Stage::Audio, Stage::Image], t) {
            Ok((t, _)) => t,
            Err((kind, t)) => return stop(kind, t),
        };
        if aborts && !self.fits(t, self.targets[2] + self.targets[3]) {
            return stop(SlotKind::Aborted(Checkpoint::BeforeVideo.into()), t);
        }
        let t = match self.lanes(slot, &[Stage::Video], t) {
            Ok((t, _)) => t,
            Err((kind, t)) => return stop(kind, t),
        };
        if aborts && !self.fits(t, self.targets[3]) {
            return stop(SlotKind::Aborted(Checkpoint::BeforeClip.into()), t);
        }
        match self.lanes(slot, &[Stage::Clip], t) {
            Ok((t, clip_attempt)) => McSlot {
                kind: if t <= self.deadline { SlotKind::OnTime } else { SlotKind::Late },
                end_s: t,
                clip_rejected: !clip_passes(self.scenario, slot, clip_attempt),
            },
            Err((kind, t)) => stop(kind, t),
        }
    }

    fn fits(&self, t: f64, work: f64) -> bool {
        let left = (self.deadline - t).max(0.0);
        left >= self.buffer && left - self.buffer >= work
    }

    /// Work from `stage` on along its path, as the static predictor estimates it.
    fn remaining_from(&self, stage: Stage) -> f64 {
        let tail = self.targets[2] + self.targets[3];
        match stage {
            Stage::Audio | Stage::Image => self.targets[stage.index()] + tail,
            Stage::Video => tail,
            Stage::Clip => self.targets[3],
        }
    }

    /// Runs one or two stages side by side from `t0` to the end of the last, or to the first
    /// failure. Returns the end time and the last stage's successful attempt index.
    fn lanes(&self, slot: u64, stages: &[Stage], t0: f64) -> Result<(f64, u32), (SlotKind, f64)> {
        let mut now = t0;
        let mut lanes: Vec<Lane> = stages.iter().map(|&s| self.start(slot, s, 0, now)).collect();
        let mut last_attempt = 0;
        let shares = stages.len() > 1 && self.slowdown > 1.0;
        loop {
            let running = lanes.iter().filter(|l| matches!(l, Lane::Running { .. })).count();
            let rate = if shares && running >= 2 { 1.0 / self.slowdown } else { 1.0 };
            let mut next: Option<(f64, usize, Event)> = None;
            for (i, lane) in lanes.iter().enumerate() {
                let candidate = match *lane {
                    Lane::Running { remaining, timeout_at, .. } => {
                        let finish = now + remaining / rate;
                        // The attempt's own completion wins a tie with its timeout, as in the scheduler.
                        if finish <= timeout_at {
                            (finish, i, Event::Finish)
                        } else {
                            (timeout_at, i, Event::Timeout)
                        }
                    }
                    Lane::Backoff { until, .. } => (until, i, Event::Start),
                    Lane::Done => continue,
                };
                if next.is_none_or(|n| candidate.0 < n.0) {
                    next = Some(candidate);
                }
            }
            let Some((at, i, event)) = next else { return Ok((now, last_attempt)) };
            for lane in &mut lanes {
                if let Lane::Running { remaining, .. } = lane {
                    *remaining = (*remaining - (at - now) * rate).max(0.0);
                }
            }
            now = at;
            let stage = stages[i];
            lanes[i] = match (&lanes[i], event) {
                (&Lane::Running { attempt, plan: Plan::Finish(_), .. }, Event::Finish) => {
                    last_attempt = attempt;
                    Lane::Done
                }
                (&Lane::Running { attempt, .. }, Event::Finish) => self.failed(stage, attempt, now, None)?,
                (&Lane::Running { attempt, capped, .. }, Event::Timeout) => {
                    self.failed(stage, attempt, now, Some(capped))?
                }
                (&Lane::Backoff { attempt, .. }, Event::Start) => self.start(slot, stage, attempt, now),
                _ => unreachable!("events follow their lane's state"),
            };
        }
    }

    fn start(&self, slot: u64, stage: Stage, attempt: u32, now: f64) -> Lane {
        let plan = Plan::draw(self.scenario, slot, stage, attempt);
        let (timeout, left) = (self.timeouts[stage.index()], (self.deadline - now).max(0.0));
        let capped = left < timeout;
        Lane::Running { attempt, plan, remaining: plan.work(), timeout_at: now + timeout.min(left), capped }
    }

    /// After a failed attempt (`timed_out`: `Some(capped by the deadline)` for a timeout): the
    /// slot fails, or the stage backs off for a retry.
    fn failed(&self, stage: Stage, attempt: u32, now: f64, timed_out: Option<bool>) -> Result<Lane, (SlotKind, f64)> {
        let kind = match timed_out {
            None => SlotKind::Failed(stage),
            Some(false) => SlotKind::TimedOut(stage),
            Some(true) => SlotKind::DeadlineCapped(stage),
        };
        if attempt + 1 > self.retries[stage.index()] {
            return Err((kind, now));
        }
        let backoff = self.backoff_base * 2f64.powi(attempt as i32);
        if !self.fits(now, backoff + self.remaining_from(stage)) {
            return Err((kind, now));
        }
        Ok(Lane::Backoff { attempt: attempt + 1, until: now + backoff })
    }
}
