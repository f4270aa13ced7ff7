//! The supervisor's glue: messages in, `memserver_sel4_root::Supervisor` decides, actions out.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use memserver_sel4_abi::message::{from_words, to_words};
use memserver_sel4_abi::root::{LABEL_EXPECT_FAULT, LABEL_PAUSE, LABEL_READY, LABEL_REPORT, Sender, sender};
use memserver_sel4_abi::{SupervisorReply, SupervisorRequest};
use memserver_sel4_root::fault::FaultKind;
use memserver_sel4_root::{Action, BootPlan, Event, Supervisor};
use protocol::MAX_MESSAGE_WORDS;
use protocol::framing::MessageWords;

use crate::untyped::ObjectAllocator;
use crate::{BootError, Built};

/// Runs the supervisor until its verdict; returns the failures.
pub fn run(
    objects: &mut ObjectAllocator,
    plan: &BootPlan,
    built: &[Built],
    report_endpoint: sel4::cap::Endpoint,
    memserver: sel4::cap::Endpoint,
) -> Result<u64, BootError> {
    let mut supervisor = Supervisor::new(plan.task_infos());
    // One slot per task for the reply capability of its pending call.
    let reply_slots: Vec<usize> = built.iter().map(|_| objects.slot()).collect::<Result<_, _>>()?;
    let mut queue: VecDeque<Action> = supervisor.start().into();
    loop {
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Start(n) => {
                    let task = built.get(n).ok_or(BootError::Description("task"))?;
                    task.process.start(task.boot_info)?;
                }
                Action::Answer(n) => {
                    let slot = *reply_slots.get(n).ok_or(BootError::Description("task"))?;
                    let reply = sel4::init_thread::Slot::<sel4::cap_type::Endpoint>::from_index(slot).cap();
                    reply.send(sel4::MessageInfoBuilder::default().build());
                }
                Action::Stop(n) => built.get(n).ok_or(BootError::Description("task"))?.process.tcb.tcb_suspend()?,
                Action::Reclaim { task, client } => {
                    let (frames, free) = reclaim(memserver, client);
                    queue.extend(supervisor.on(Event::Reclaimed { task, frames, free }));
                }
                Action::ReclaimHeap { task, client } => {
                    let (frames, free) = reclaim(memserver, client);
                    queue.extend(supervisor.on(Event::HeapReclaimed { task, frames, free }));
                }
                Action::Census(stage) => match call(memserver, &SupervisorRequest::Census) {
                    Some(SupervisorReply::Census(census)) => {
                        queue.extend(supervisor.on(Event::Census { stage, census }))
                    }
                    other => {
                        sel4::debug_println!("root: the memserver answered the census with {other:?}");
                        return Ok(supervisor.failures() + 1);
                    }
                },
                Action::Say(line) => sel4::debug_println!("{line}"),
                Action::Finish { failures } => return Ok(failures),
            }
        }
        let (info, badge) = report_endpoint.recv(());
        let event = match sender(badge) {
            Some(Sender::Task(task)) => {
                let (mr0, mr1) = sel4::with_ipc_buffer(|buf| (buf.msg_regs()[0], buf.msg_regs()[1]));
                let save = || -> Result<(), BootError> {
                    let slot = *reply_slots.get(task).ok_or(BootError::Description("task"))?;
                    let cap: sel4::cap::Unspecified = sel4::init_thread::Slot::from_index(slot).cap();
                    let path = sel4::init_thread::slot::CNODE.cap().absolute_cptr(cap);
                    // A reply capability used up leaves the slot empty; be sure of it.
                    let _ = path.delete();
                    path.save_caller()?;
                    Ok(())
                };
                match info.label() {
                    LABEL_REPORT => Event::Report { task, failures: mr0 },
                    LABEL_READY => {
                        save()?;
                        Event::Ready { task }
                    }
                    LABEL_PAUSE => {
                        save()?;
                        Event::Pause { task }
                    }
                    LABEL_EXPECT_FAULT => {
                        save()?;
                        Event::ExpectFault { task, offset: mr0, frames: u32::try_from(mr1).unwrap_or(u32::MAX) }
                    }
                    other => {
                        sel4::debug_println!("root: unexpected message label {other:#x} from task {task}");
                        continue;
                    }
                }
            }
            Some(Sender::Fault(task)) => {
                let fault = sel4::with_ipc_buffer(|buf| sel4::Fault::new(buf, &info));
                Event::Fault { task, fault: fault_kind(&fault) }
            }
            None => {
                sel4::debug_println!("root: a message with badge {badge:#x}, which was never minted");
                continue;
            }
        };
        queue.extend(supervisor.on(event));
    }
}

/// What the supervisor needs to know about a fault.
fn fault_kind(fault: &sel4::Fault) -> FaultKind {
    match fault {
        sel4::Fault::VmFault(vm) => {
            FaultKind::Vm { addr: vm.addr() as u64, ip: vm.ip() as u64, prefetch: vm.is_prefetch() }
        }
        sel4::Fault::CapFault(_) => FaultKind::Other { kind: "capability" },
        sel4::Fault::UnknownSyscall(_) => FaultKind::Other { kind: "unknown syscall" },
        sel4::Fault::UserException(_) => FaultKind::Other { kind: "user exception" },
        _ => FaultKind::Other { kind: "other" },
    }
}

/// Has the memserver reclaim `client`: the frames that came back and the pool's free frames
/// (0, 0 if it refused, which the supervisor then sees as frames missing).
fn reclaim(memserver: sel4::cap::Endpoint, client: protocol::ClientId) -> (u32, u32) {
    match call(memserver, &SupervisorRequest::Reclaim { client }) {
        Some(SupervisorReply::Reclaimed { frames, free }) => (frames, free),
        other => {
            sel4::debug_println!("root: the memserver answered the reclaim of client {client} with {other:?}");
            (0, 0)
        }
    }
}

/// One supervisor request to the memserver, on the capability with the supervisor badge.
fn call(memserver: sel4::cap::Endpoint, request: &SupervisorRequest) -> Option<SupervisorReply> {
    let mut words: MessageWords = [0; MAX_MESSAGE_WORDS];
    let (label, len) = to_words(request, &mut words).ok()?;
    sel4::with_ipc_buffer_mut(|buf| buf.msg_regs_mut()[..len].copy_from_slice(&words[..len]));
    let info = memserver.call(sel4::MessageInfoBuilder::default().label(label).length(len).build());
    let reply_len = info.length().min(MAX_MESSAGE_WORDS);
    let mut reply: MessageWords = [0; MAX_MESSAGE_WORDS];
    sel4::with_ipc_buffer(|buf| reply[..reply_len].copy_from_slice(&buf.msg_regs()[..reply_len]));
    from_words(info.label(), &reply[..reply_len]).ok()
}
