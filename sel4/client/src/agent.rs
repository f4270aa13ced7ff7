//! Both sides of the agent protocol (`memserver_sel4_abi::agent`).

use memserver_sel4_abi::agent::{AgentReply, AgentRequest, Area, CALL_TAG, CHUNK};
use memserver_sel4_abi::message::{from_words, to_words};
use protocol::MAX_MESSAGE_WORDS;
use protocol::framing::{LABEL_LENGTH_MASK, MessageWords};

use crate::Link;
use crate::call::{CallError, call_tagged};

/// The agent's own shared regions, reached by copying only.
pub trait AgentMemory {
    /// Copies bytes at `offset` of `area` into `buf`; `false` if they are not all inside it.
    fn read(&mut self, area: Area, offset: u64, buf: &mut [u8]) -> bool;
    /// Copies `data` to `offset` of `area`; `false` if it does not fit inside it.
    fn write(&mut self, area: Area, offset: u64, data: &[u8]) -> bool;
}

/// What the agent does after answering one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The reply's label.
    pub label: u64,
    /// Words of the reply (in the reply buffer).
    pub len: usize,
    /// The driver said `Finish`: the agent stops after this reply.
    pub finished: bool,
}

/// Serves one agent request received with `label` and `words`: relays a tagged call to the
/// memserver over `memserver`, or copies in or out of `memory`. The reply goes into `reply`.
pub fn serve(
    label: u64,
    words: &[u64],
    memserver: &mut impl Link,
    memory: &mut impl AgentMemory,
    reply: &mut MessageWords,
) -> Answer {
    if label & CALL_TAG != 0 {
        let (label, len) = memserver.call(label & LABEL_LENGTH_MASK, words, reply);
        return Answer { label, len, finished: false };
    }
    let (answer, finished) = match from_words::<AgentRequest>(label, words) {
        Ok(AgentRequest::Read { area, offset, len }) => {
            let mut data = heapless::Vec::<u8, CHUNK>::new();
            if data.resize(usize::from(len), 0).is_ok() && memory.read(area, offset, &mut data) {
                (AgentReply::Data(data), false)
            } else {
                (AgentReply::OutOfRange, false)
            }
        }
        Ok(AgentRequest::Write { area, offset, data }) => {
            (if memory.write(area, offset, &data) { AgentReply::Done } else { AgentReply::OutOfRange }, false)
        }
        Ok(AgentRequest::Finish) => (AgentReply::Done, true),
        Err(_) => (AgentReply::OutOfRange, false),
    };
    let (label, len) = to_words(&answer, reply).unwrap_or((0, 0));
    Answer { label, len, finished }
}

/// Why a request to an agent failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteError {
    /// The relayed call's reply could not be read.
    Call(CallError),
    /// The agent refused: bytes outside its region.
    OutOfRange,
    /// The agent's answer was not what the request expects.
    BadAnswer,
}

/// The driver's view of a client that another task (its agent) speaks for.
pub struct RemoteClient<L: Link> {
    link: L,
}

impl<L: Link> RemoteClient<L> {
    /// A client reached through `link`, an endpoint capability to the agent.
    pub fn new(link: L) -> Self {
        RemoteClient { link }
    }

    /// A memserver request, performed by the agent as its client: the reply's bytes into
    /// `reply`; returns their length.
    pub fn call(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, RemoteError> {
        call_tagged(&mut self.link, CALL_TAG, request, reply).map_err(RemoteError::Call)
    }

    /// Copies `buf.len()` bytes at `offset` of the agent's `area` out.
    pub fn read(&mut self, area: Area, offset: u64, buf: &mut [u8]) -> Result<(), RemoteError> {
        let mut at = offset;
        for chunk in buf.chunks_mut(CHUNK) {
            let len = u16::try_from(chunk.len()).map_err(|_| RemoteError::BadAnswer)?;
            match self.request(&AgentRequest::Read { area, offset: at, len })? {
                AgentReply::Data(data) if data.len() == chunk.len() => chunk.copy_from_slice(&data),
                AgentReply::OutOfRange => return Err(RemoteError::OutOfRange),
                _ => return Err(RemoteError::BadAnswer),
            }
            at = at.checked_add(u64::from(len)).ok_or(RemoteError::OutOfRange)?;
        }
        Ok(())
    }

    /// Copies `data` to `offset` of the agent's `area`.
    pub fn write(&mut self, area: Area, offset: u64, data: &[u8]) -> Result<(), RemoteError> {
        let mut at = offset;
        for chunk in data.chunks(CHUNK) {
            let data = heapless::Vec::from_slice(chunk).map_err(|_| RemoteError::BadAnswer)?;
            self.expect_done(&AgentRequest::Write { area, offset: at, data })?;
            at = at.checked_add(chunk.len() as u64).ok_or(RemoteError::OutOfRange)?;
        }
        Ok(())
    }

    /// Tells the agent the driver is done with it.
    pub fn finish(&mut self) -> Result<(), RemoteError> {
        self.expect_done(&AgentRequest::Finish)
    }

    fn expect_done(&mut self, request: &AgentRequest) -> Result<(), RemoteError> {
        match self.request(request)? {
            AgentReply::Done => Ok(()),
            AgentReply::OutOfRange => Err(RemoteError::OutOfRange),
            AgentReply::Data(_) => Err(RemoteError::BadAnswer),
        }
    }

    fn request(&mut self, request: &AgentRequest) -> Result<AgentReply, RemoteError> {
        let mut words: MessageWords = [0; MAX_MESSAGE_WORDS];
        let (label, used) = to_words(request, &mut words).map_err(|_| RemoteError::BadAnswer)?;
        let mut answer: MessageWords = [0; MAX_MESSAGE_WORDS];
        let (reply_label, len) = self.link.call(label, words.get(..used).unwrap_or(&[]), &mut answer);
        from_words(reply_label, answer.get(..len).ok_or(RemoteError::BadAnswer)?).map_err(|_| RemoteError::BadAnswer)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use protocol::MAX_MESSAGE_BYTES;
    use protocol::framing;

    use super::*;

    /// The agent's regions: plain memory.
    struct Regions {
        window: Vec<u8>,
        control: Vec<u8>,
    }

    impl Regions {
        fn area(&mut self, area: Area) -> &mut Vec<u8> {
            match area {
                Area::Window => &mut self.window,
                Area::Control => &mut self.control,
            }
        }
    }

    impl AgentMemory for Regions {
        fn read(&mut self, area: Area, offset: u64, buf: &mut [u8]) -> bool {
            let region = self.area(area);
            let Some(src) = usize::try_from(offset).ok().and_then(|o| region.get(o..o.checked_add(buf.len())?)) else {
                return false;
            };
            buf.copy_from_slice(src);
            true
        }

        fn write(&mut self, area: Area, offset: u64, data: &[u8]) -> bool {
            let region = self.area(area);
            let Some(dst) = usize::try_from(offset).ok().and_then(|o| region.get_mut(o..o.checked_add(data.len())?))
            else {
                return false;
            };
            dst.copy_from_slice(data);
            true
        }
    }

    /// A memserver stand-in: records what reached it, answers with the byte count as one byte.
    #[derive(Default)]
    struct Memserver {
        calls: Vec<(u64, usize)>,
    }

    impl Link for Memserver {
        fn call(&mut self, label: u64, words: &[u64], reply: &mut MessageWords) -> (u64, usize) {
            self.calls.push((label, words.len()));
            framing::pack(&[(label & 0xff) as u8], reply).unwrap()
        }
    }

    /// The driver's link: straight into the agent's `serve`.
    struct Loopback {
        memserver: Memserver,
        regions: Regions,
        finished: bool,
    }

    impl Link for &mut Loopback {
        fn call(&mut self, label: u64, words: &[u64], reply: &mut MessageWords) -> (u64, usize) {
            let answer = serve(label, words, &mut self.memserver, &mut self.regions, reply);
            self.finished |= answer.finished;
            (answer.label, answer.len)
        }
    }

    fn loopback() -> Loopback {
        Loopback {
            memserver: Memserver::default(),
            regions: Regions { window: vec![0; 3 * 4096], control: vec![0; 4096] },
            finished: false,
        }
    }

    #[test]
    fn reads_and_writes_larger_than_a_message_go_in_chunks() {
        let mut agent = loopback();
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let mut remote = RemoteClient::new(&mut agent);
        remote.write(Area::Window, 100, &data).unwrap();
        let mut back = vec![0u8; data.len()];
        remote.read(Area::Window, 100, &mut back).unwrap();
        assert_eq!(back, data);
        assert_eq!(&agent.regions.window[100..5100], &data[..]);
        assert!(agent.regions.control.iter().all(|&b| b == 0), "the other region is untouched");
    }

    #[test]
    fn bytes_outside_the_agents_region_are_refused() {
        let mut agent = loopback();
        let mut remote = RemoteClient::new(&mut agent);
        let mut buf = [0u8; 16];
        assert_eq!(remote.read(Area::Control, 4090, &mut buf), Err(RemoteError::OutOfRange));
        assert_eq!(remote.write(Area::Window, u64::MAX - 2, &buf), Err(RemoteError::OutOfRange));
    }

    #[test]
    fn a_relayed_call_reaches_the_memserver_with_its_label_and_words_unchanged() {
        let mut agent = loopback();
        let mut remote = RemoteClient::new(&mut agent);
        let mut reply = [0u8; 8];
        let n = remote.call(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], &mut reply).unwrap();
        assert_eq!(&reply[..n], &[10]);
        // Oversized: the memserver sees the real length and a full message of words.
        let big = vec![1u8; MAX_MESSAGE_BYTES + 1];
        remote.call(&big, &mut reply).unwrap();
        assert_eq!(agent.memserver.calls, [(10, 2), ((MAX_MESSAGE_BYTES + 1) as u64, MAX_MESSAGE_WORDS)]);
    }

    #[test]
    fn finish_stops_the_agent() {
        let mut agent = loopback();
        RemoteClient::new(&mut agent).finish().unwrap();
        assert!(agent.finished);
    }

    #[test]
    fn a_garbage_request_is_refused_and_the_agent_goes_on() {
        let mut agent = loopback();
        let mut reply: MessageWords = [0; MAX_MESSAGE_WORDS];
        let answer = serve(3, &[u64::MAX], &mut agent.memserver, &mut agent.regions, &mut reply);
        let decoded: AgentReply = from_words(answer.label, &reply[..answer.len]).unwrap();
        assert_eq!(decoded, AgentReply::OutOfRange);
        assert!(!answer.finished);
    }
}
