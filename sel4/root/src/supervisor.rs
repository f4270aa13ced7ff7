//! The supervisor: the root task's state machine once every task is built.
//!
//! It is fed [`Event`]s (what a task said on its report capability, what the kernel said on
//! its fault capability, what the memserver answered a supervisor request) and answers with
//! [`Action`]s for the glue to perform. The run:
//!
//! 1. Background tasks (the load generator) start, grow their caches and call `Ready`; once
//!    all are ready their calls are answered and they run beside what follows.
//! 2. Every other image runs alone, one image after another (the conformance suite and its
//!    agent; the use-after-shrink task), so their pool accounting sees no other client move.
//! 3. A task that announced a fault (`ExpectFault`: the window offset it will touch and the
//!    frames it holds) and then faults exactly there is reported, stopped and reclaimed
//!    through the memserver; the frames that come back must be the frames it held. Any other
//!    fault is reported and reclaimed the same way, and counts as a failure (and takes the
//!    rest of its image's tasks down: they were working with it).
//! 4. When the exclusive images are done and every background task is paused (it called
//!    `Pause`, its memory still held), the memserver takes the frame census; then the paused
//!    tasks go on, free everything and report; then the final census.
//! 5. A task with a heap client has it reclaimed when the task ends, however it ends (a
//!    report, a fault, stopped with its image): nothing in its heap can be used after that.
//!    The task counts as finished once its heap is back.
//! 6. The verdict: the failures the tasks reported, plus every fault that was not expected,
//!    an expected fault that did not come or whose frames did not all come back, and a
//!    census that disagrees.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use memserver_sel4_abi::{Census, Region};
use protocol::ClientId;

use crate::fault::{FaultKind, FaultReport};

/// When the census is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Background tasks paused with their memory held.
    Held,
    /// Every task done.
    Final,
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Task `task` reported its failed checks and stopped.
    Report { task: usize, failures: u64 },
    /// Task `task` called `Ready` (its reply capability saved).
    Ready { task: usize },
    /// Task `task` called `Pause` (its reply capability saved).
    Pause { task: usize },
    /// Task `task` called `ExpectFault` (its reply capability saved).
    ExpectFault { task: usize, offset: u64, frames: u32 },
    /// The kernel reported a fault of task `task`.
    Fault { task: usize, fault: FaultKind },
    /// The memserver reclaimed task `task`'s client.
    Reclaimed { task: usize, frames: u32, free: u32 },
    /// The memserver reclaimed task `task`'s heap client.
    HeapReclaimed { task: usize, frames: u32, free: u32 },
    /// The memserver took the census.
    Census { stage: Stage, census: Census },
}

/// What the glue must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start task `n`.
    Start(usize),
    /// Answer task `n`'s pending call.
    Answer(usize),
    /// Stop (suspend) task `n`.
    Stop(usize),
    /// Ask the memserver to reclaim `client` (task `task`'s); answer with `Event::Reclaimed`.
    Reclaim { task: usize, client: ClientId },
    /// Ask the memserver to reclaim `client`, task `task`'s heap client; answer with
    /// `Event::HeapReclaimed`.
    ReclaimHeap { task: usize, client: ClientId },
    /// Ask the memserver for the census; answer with `Event::Census`.
    Census(Stage),
    /// Print a line.
    Say(String),
    /// The run is over with this many failures (0: `TEST_PASS`).
    Finish { failures: u64 },
}

/// One client task as the supervisor sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskInfo {
    /// Its image.
    pub image: String,
    /// Its client's name.
    pub name: String,
    /// Its client id.
    pub client: ClientId,
    /// Its window.
    pub window: Region,
    /// Whether its image runs in the background.
    pub background: bool,
    /// Its heap client, if it has one.
    pub heap: Option<ClientId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Running,
    /// A call (ready, pause, expect-fault) waits for its answer.
    Waiting,
    /// It faulted (or was stopped with its image): stopped, its memory being reclaimed.
    Reclaiming,
    /// It reported, or was reclaimed: nothing more will come from it.
    Finished,
}

#[derive(Clone, Debug)]
struct Task {
    info: TaskInfo,
    phase: Phase,
    ready: bool,
    paused: bool,
    /// (window offset, frames) it announced.
    expect: Option<(u64, u32)>,
    /// Its fault matched the announcement; waiting for the reclaim.
    fault_as_expected: bool,
    /// Its heap client is being reclaimed.
    heap_pending: bool,
}

/// The supervisor.
pub struct Supervisor {
    tasks: Vec<Task>,
    /// The exclusive images, in order of first appearance.
    groups: Vec<String>,
    /// The group running (index into `groups`), or `groups.len()` when all are done.
    group: Option<usize>,
    held_requested: bool,
    held_census: bool,
    final_requested: bool,
    final_census: bool,
    failures: u64,
    finished: bool,
}

impl Supervisor {
    /// A supervisor of `tasks`, none started.
    pub fn new(tasks: Vec<TaskInfo>) -> Supervisor {
        let mut groups: Vec<String> = Vec::new();
        for t in tasks.iter().filter(|t| !t.background) {
            if !groups.contains(&t.image) {
                groups.push(t.image.clone());
            }
        }
        let tasks = tasks
            .into_iter()
            .map(|info| Task {
                info,
                phase: Phase::NotStarted,
                ready: false,
                paused: false,
                expect: None,
                fault_as_expected: false,
                heap_pending: false,
            })
            .collect();
        Supervisor {
            tasks,
            groups,
            group: None,
            held_requested: false,
            held_census: false,
            final_requested: false,
            final_census: false,
            failures: 0,
            finished: false,
        }
    }

    /// Failures counted so far.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// The first actions: start the background tasks (or, without any, the first image).
    pub fn start(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        for (n, t) in self.tasks.iter_mut().enumerate() {
            if t.info.background {
                t.phase = Phase::Running;
                actions.push(Action::Start(n));
            }
        }
        self.progress(&mut actions);
        actions
    }

    /// Handles one event.
    pub fn on(&mut self, event: Event) -> Vec<Action> {
        let mut actions = Vec::new();
        match event {
            Event::Report { task, failures } => self.report(task, failures, &mut actions),
            Event::Ready { task } => {
                if let Some(t) = self.running(task, &mut actions) {
                    t.ready = true;
                    t.phase = Phase::Waiting;
                }
            }
            Event::Pause { task } => {
                if let Some(t) = self.running(task, &mut actions) {
                    t.paused = true;
                    t.phase = Phase::Waiting;
                }
            }
            Event::ExpectFault { task, offset, frames } => {
                if let Some(t) = self.running(task, &mut actions) {
                    t.expect = Some((offset, frames));
                    actions.push(Action::Answer(task));
                }
            }
            Event::Fault { task, fault } => self.fault(task, fault, &mut actions),
            Event::Reclaimed { task, frames, free } => self.reclaimed(task, frames, free, &mut actions),
            Event::HeapReclaimed { task, frames, free } => self.heap_reclaimed(task, frames, free, &mut actions),
            Event::Census { stage, census } => {
                actions.push(Action::Say(format!("root: census ({}): {census}", stage_name(stage))));
                if !census.agrees() {
                    self.failures += 1;
                    actions.push(Action::Say(format!("root: the {} census disagrees", stage_name(stage))));
                }
                match stage {
                    Stage::Held => {
                        self.held_census = true;
                        for (n, t) in self.tasks.iter_mut().enumerate() {
                            if t.paused && t.phase == Phase::Waiting {
                                t.phase = Phase::Running;
                                actions.push(Action::Answer(n));
                            }
                        }
                    }
                    Stage::Final => self.final_census = true,
                }
            }
        }
        self.progress(&mut actions);
        actions
    }

    /// The task, if it is alive; a message from a finished or unknown task is noted.
    fn running(&mut self, task: usize, actions: &mut Vec<Action>) -> Option<&mut Task> {
        match self.tasks.get_mut(task) {
            Some(t) if matches!(t.phase, Phase::Running | Phase::Waiting) => Some(t),
            _ => {
                actions.push(Action::Say(format!("root: ignored a message from task {task}")));
                None
            }
        }
    }

    fn report(&mut self, task: usize, failures: u64, actions: &mut Vec<Action>) {
        let Some(t) = self.running(task, actions) else { return };
        t.phase = Phase::Finished;
        let name = t.info.name.clone();
        let missed = t.expect.is_some();
        actions.push(Action::Say(format!("root: client {name} reported {failures} failure(s)")));
        Self::release_heap(task, t, actions);
        self.failures += failures;
        if missed {
            self.failures += 1;
            actions.push(Action::Say(format!("root: client {name} announced a fault that never came")));
        }
    }

    fn fault(&mut self, task: usize, fault: FaultKind, actions: &mut Vec<Action>) {
        let Some(t) = self.running(task, actions) else { return };
        t.phase = Phase::Reclaiming;
        actions.push(Action::Say(format!("{}", FaultReport { name: &t.info.name, window: t.info.window, fault })));
        actions.push(Action::Stop(task));
        Self::release_heap(task, t, actions);
        actions.push(Action::Reclaim { task, client: t.info.client });
        let expected = match (t.expect, fault) {
            (Some((offset, _)), FaultKind::Vm { addr, prefetch: false, .. }) => {
                t.info.window.addr.checked_add(offset) == Some(addr)
            }
            _ => false,
        };
        t.fault_as_expected = expected;
        let (image, name, background) = (t.info.image.clone(), t.info.name.clone(), t.info.background);
        if !expected {
            self.failures += 1;
            actions.push(Action::Say(format!("root: client {name} faulted unexpectedly")));
            if !background {
                self.stop_group(&image, task, actions);
            }
        }
    }

    /// Stops the other live tasks of `image` (they were working with the one that died).
    fn stop_group(&mut self, image: &str, except: usize, actions: &mut Vec<Action>) {
        for (n, t) in self.tasks.iter_mut().enumerate() {
            if n != except && t.info.image == image && matches!(t.phase, Phase::Running | Phase::Waiting) {
                t.phase = Phase::Reclaiming;
                self.failures += 1;
                actions.push(Action::Say(format!("root: client {} stopped with its image", t.info.name)));
                actions.push(Action::Stop(n));
                Self::release_heap(n, t, actions);
                actions.push(Action::Reclaim { task: n, client: t.info.client });
            }
        }
    }

    fn reclaimed(&mut self, task: usize, frames: u32, free: u32, actions: &mut Vec<Action>) {
        let Some(t) = self.tasks.get_mut(task).filter(|t| t.phase == Phase::Reclaiming) else {
            actions.push(Action::Say(format!("root: a reclaim of task {task}, which was not stopped")));
            return;
        };
        t.phase = Phase::Finished;
        actions.push(Action::Say(format!(
            "root: client {} reclaimed: {frames} frame(s) back to the pool, {free} free",
            t.info.name
        )));
        if t.fault_as_expected {
            let held = t.expect.map_or(0, |(_, f)| f);
            if frames == held {
                actions
                    .push(Action::Say(format!("root: client {}: fault caught and its frames came back", t.info.name)));
            } else {
                self.failures += 1;
                actions.push(Action::Say(format!(
                    "root: client {} held {held} frame(s), {frames} came back",
                    t.info.name
                )));
            }
        }
    }

    /// Reclaims the heap client of `t` (task `n`), which has ended, if it has one.
    fn release_heap(n: usize, t: &mut Task, actions: &mut Vec<Action>) {
        if let Some(client) = t.info.heap {
            t.heap_pending = true;
            actions.push(Action::ReclaimHeap { task: n, client });
        }
    }

    fn heap_reclaimed(&mut self, task: usize, frames: u32, free: u32, actions: &mut Vec<Action>) {
        let Some(t) = self.tasks.get_mut(task).filter(|t| t.heap_pending) else {
            actions.push(Action::Say(format!("root: a heap reclaim of task {task}, which was not asked for")));
            return;
        };
        t.heap_pending = false;
        actions.push(Action::Say(format!(
            "root: client {}'s heap (client {}) reclaimed: {frames} frame(s) back to the pool, {free} free",
            t.info.name,
            t.info.heap.unwrap_or_default()
        )));
    }

    /// Whether every task `f` selects is finished, its heap included.
    fn all_finished(&self, f: impl Fn(&Task) -> bool) -> bool {
        self.tasks.iter().filter(|t| f(t)).all(|t| t.phase == Phase::Finished && !t.heap_pending)
    }

    /// Starts what can start, answers what can be answered, takes the censuses, finishes.
    fn progress(&mut self, actions: &mut Vec<Action>) {
        if self.finished {
            return;
        }
        // 1. Every background task ready (or gone): answer them, open the exclusive images.
        let background_settled =
            self.tasks.iter().filter(|t| t.info.background).all(|t| t.ready || t.phase == Phase::Finished);
        if background_settled && self.group.is_none() {
            self.group = Some(0);
            for (n, t) in self.tasks.iter_mut().enumerate() {
                if t.ready && t.phase == Phase::Waiting && !t.paused {
                    t.phase = Phase::Running;
                    actions.push(Action::Answer(n));
                }
            }
            self.start_group(actions);
        }
        // 2. The running image done: the next one.
        while let Some(g) = self.group.filter(|&g| g < self.groups.len()) {
            let image = self.groups.get(g).cloned().unwrap_or_default();
            if !self.all_finished(|t| t.info.image == image) {
                break;
            }
            self.group = Some(g + 1);
            self.start_group(actions);
        }
        let exclusive_done = self.group.is_some_and(|g| g >= self.groups.len());
        // 3. The census with the background tasks' memory held.
        let background_paused =
            self.tasks.iter().filter(|t| t.info.background).all(|t| t.paused || t.phase == Phase::Finished);
        if exclusive_done && background_paused && !self.held_requested {
            self.held_requested = true;
            actions.push(Action::Census(Stage::Held));
            return;
        }
        // 4. Everything done: the final census, then the verdict.
        if self.held_census && self.all_finished(|_| true) {
            if !self.final_requested {
                self.final_requested = true;
                actions.push(Action::Census(Stage::Final));
            } else if self.final_census {
                self.finished = true;
                actions.push(Action::Finish { failures: self.failures });
            }
        }
    }

    fn start_group(&mut self, actions: &mut Vec<Action>) {
        let Some(image) = self.group.and_then(|g| self.groups.get(g)).cloned() else { return };
        actions.push(Action::Say(format!("root: starting the {image} task(s)")));
        for (n, t) in self.tasks.iter_mut().enumerate() {
            if t.info.image == image && t.phase == Phase::NotStarted {
                t.phase = Phase::Running;
                actions.push(Action::Start(n));
            }
        }
    }
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Held => "load tasks paused, memory held",
        Stage::Final => "end",
    }
}
