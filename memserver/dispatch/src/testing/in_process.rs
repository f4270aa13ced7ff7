//! [`InProcess`]: the dispatch as a [`Transport`], so a test drives a [`Server`] through the
//! protocol's typed client (`protocol::api::Client`) without a runner.

use protocol::{ClientId, MAX_MESSAGE_BYTES, MessageBuffer, Transport, TransportError};

use crate::{ControlAccess, Server};
use memserver_engine::Platform;

/// Every call is one [`Server::dispatch`] as `client`.
pub struct InProcess<'s, 'a, P: Platform + ControlAccess> {
    /// The server.
    pub server: &'s mut Server<'a, P>,
    /// Who calls.
    pub client: ClientId,
}

impl<P: Platform + ControlAccess> Transport for InProcess<'_, '_, P> {
    fn call(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, TransportError> {
        let mut bytes: MessageBuffer = [0; MAX_MESSAGE_BYTES];
        let len = self.server.dispatch(self.client, request, &mut bytes);
        reply.get_mut(..len).ok_or(TransportError::Truncated)?.copy_from_slice(&bytes[..len]);
        Ok(len)
    }
}
