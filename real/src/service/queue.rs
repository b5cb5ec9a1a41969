//! Every slot the service knows, and the bounded queue of those waiting for the GPU.
//!
//! One table under one lock: a slot id is taken once for good (queued, running, finished, or
//! found on disk at start-up), so a duplicate is refused whatever state its first holder is in.

use std::collections::{HashMap, VecDeque};
use std::time::SystemTime;

use serde::Serialize;
use vortex::Recipe;

use super::store::Summary;

/// How many finished slots the status page lists.
pub const RECENT_SLOTS: usize = 20;

/// Where one slot stands.
#[derive(Debug, Clone)]
pub enum Status {
    /// Waiting for the GPU.
    Queued(Box<Recipe>),
    /// Generating now.
    Running,
    /// Its folder is written (its result says how it ended).
    Finished(Box<Summary>),
    /// It could not run or its folder could not be written; nothing of it is on disk.
    Error(String),
    /// A folder of this id exists but its result cannot be read: the id stays taken.
    Unreadable(String),
}

impl Status {
    /// The status's name, as `GET /slots/{id}` says it.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Queued(_) => "queued",
            Status::Running => "running",
            Status::Finished(_) => "finished",
            Status::Error(_) => "error",
            Status::Unreadable(_) => "unreadable",
        }
    }
}

/// A slot and its deadline.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Where it stands.
    pub status: Status,
    /// When its clip must be ready, by the wall clock (`None` for one found on disk).
    pub deadline: Option<SystemTime>,
}

/// Why a slot was not queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The id is taken (the status it is in).
    Duplicate(&'static str),
    /// The queue holds its bound.
    Full(usize),
}

/// A snapshot of the queue for the status page and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct QueueView {
    /// Slots waiting.
    pub depth: usize,
    /// The bound.
    pub max: usize,
    /// The slot generating now.
    pub running: Option<u64>,
    /// The waiting slots' ids, first to run first.
    pub waiting: Vec<u64>,
}

/// All slots and the queue.
#[derive(Debug)]
pub struct Table {
    slots: HashMap<u64, Entry>,
    queue: VecDeque<u64>,
    running: Option<u64>,
    recent: VecDeque<u64>,
    max: usize,
}

impl Table {
    /// An empty table whose queue holds at most `max` slots.
    pub fn new(max: usize) -> Table {
        Table { slots: HashMap::new(), queue: VecDeque::new(), running: None, recent: VecDeque::new(), max }
    }

    /// Records a slot found on disk at start-up (`ended` orders the recent list).
    pub fn found(&mut self, slot_id: u64, status: Status) {
        if matches!(status, Status::Finished(_)) {
            self.push_recent(slot_id);
        }
        self.slots.insert(slot_id, Entry { status, deadline: None });
    }

    /// Queues a slot; returns its place (1 is next).
    pub fn push(&mut self, recipe: Recipe, deadline: SystemTime) -> Result<usize, Refusal> {
        if let Some(entry) = self.slots.get(&recipe.slot_id) {
            return Err(Refusal::Duplicate(entry.status.name()));
        }
        if self.queue.len() >= self.max {
            return Err(Refusal::Full(self.max));
        }
        let id = recipe.slot_id;
        self.slots.insert(id, Entry { status: Status::Queued(Box::new(recipe)), deadline: Some(deadline) });
        self.queue.push_back(id);
        Ok(self.queue.len())
    }

    /// Takes the next slot to run and marks it running.
    pub fn pop(&mut self) -> Option<(Recipe, SystemTime)> {
        let id = self.queue.pop_front()?;
        let entry = self.slots.get_mut(&id).expect("a queued slot is in the table");
        let Status::Queued(recipe) = std::mem::replace(&mut entry.status, Status::Running) else {
            unreachable!("a slot in the queue is queued")
        };
        self.running = Some(id);
        Some((*recipe, entry.deadline.expect("a queued slot has a deadline")))
    }

    /// Records how the running slot ended.
    pub fn finish(&mut self, slot_id: u64, status: Status) {
        if self.running == Some(slot_id) {
            self.running = None;
        }
        if matches!(status, Status::Finished(_)) {
            self.push_recent(slot_id);
        }
        if let Some(entry) = self.slots.get_mut(&slot_id) {
            entry.status = status;
        }
    }

    /// Forgets a slot that was never written (cancelled at shutdown), so nothing claims it.
    pub fn forget(&mut self, slot_id: u64) {
        if self.running == Some(slot_id) {
            self.running = None;
        }
        self.queue.retain(|&id| id != slot_id);
        self.slots.remove(&slot_id);
    }

    /// A slot's entry.
    pub fn get(&self, slot_id: u64) -> Option<&Entry> {
        self.slots.get(&slot_id)
    }

    /// The queue now.
    pub fn view(&self) -> QueueView {
        QueueView {
            depth: self.queue.len(),
            max: self.max,
            running: self.running,
            waiting: self.queue.iter().copied().collect(),
        }
    }

    /// The last finished slots, newest first, with their summaries.
    pub fn recent(&self) -> Vec<Summary> {
        self.recent
            .iter()
            .rev()
            .filter_map(|id| match &self.slots.get(id)?.status {
                Status::Finished(s) => Some((**s).clone()),
                _ => None,
            })
            .collect()
    }

    fn push_recent(&mut self, slot_id: u64) {
        self.recent.push_back(slot_id);
        while self.recent.len() > RECENT_SLOTS {
            self.recent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_bounded_and_an_id_is_taken_once_whatever_its_state() {
        let mut table = Table::new(2);
        let at = SystemTime::UNIX_EPOCH;
        assert_eq!(table.push(Recipe::new(1, "a", "b"), at), Ok(1));
        assert_eq!(table.push(Recipe::new(2, "a", "b"), at), Ok(2));
        assert_eq!(table.push(Recipe::new(3, "a", "b"), at), Err(Refusal::Full(2)));
        assert_eq!(table.push(Recipe::new(1, "a", "b"), at), Err(Refusal::Duplicate("queued")));
        let (first, _) = table.pop().unwrap();
        assert_eq!(first.slot_id, 1);
        assert_eq!(table.view().running, Some(1));
        assert_eq!(table.push(Recipe::new(1, "a", "b"), at), Err(Refusal::Duplicate("running")));
        assert_eq!(table.push(Recipe::new(3, "a", "b"), at), Ok(2));
        table.finish(1, Status::Error("x".into()));
        assert_eq!(table.push(Recipe::new(1, "a", "b"), at), Err(Refusal::Duplicate("error")));
        assert_eq!(table.view().waiting, [2, 3]);
        table.forget(3);
        assert_eq!(table.view().waiting, [2]);
        assert!(table.get(3).is_none());
    }
}
