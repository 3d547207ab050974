//! Client faults: each module runs one action against the target and
//! reports through a [`Progress`] and its [`Findings`].

pub mod badauth;
pub mod garbage;
pub mod halfopen;
pub mod pace;
pub mod reset;
pub mod slowloris;
pub mod storm;

use crate::Error;
use crate::report::{Findings, Progress};
use crate::scenario::{Action, ChaosStep};
use crate::target::ChaosTarget;
use crate::ws::{ConnectError, ConnectOptions, WsConn, connect};
use squall_proto::Endpoint;
use std::sync::Arc;
use std::time::Duration;

/// Bound on connect plus upgrade for every chaos socket.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a fault needs, shared by all of its sockets.
#[derive(Debug)]
pub struct FaultContext {
    /// The step.
    pub step: ChaosStep,
    /// The target.
    pub target: ChaosTarget,
    /// The target's resolved and guarded WebSocket endpoint.
    pub endpoint: Endpoint,
    /// Live counters.
    pub progress: Arc<Progress>,
}

impl FaultContext {
    /// Connection options for chaos socket `i`, authenticated like the load.
    pub fn options(&self, i: u64) -> ConnectOptions {
        ConnectOptions {
            timeout: CONNECT_TIMEOUT,
            recv_buffer: None,
            token: self.target.token(i),
            placement: self.target.placement,
            tls: self.target.tls.clone(),
        }
    }

    /// Opens chaos socket `i` and sends its subscribe frame, if any.
    pub async fn open_subscribed(
        &self,
        i: u64,
        options: ConnectOptions,
    ) -> Result<WsConn, ConnectError> {
        let mut ws = connect(&self.endpoint, &options).await?;
        if let Some(frame) = self.target.subscribe_frame(i) {
            ws.send_text(frame).await.map_err(ConnectError::Io)?;
        }
        Ok(ws)
    }
}

/// Runs a client fault to its end. `proxy` steps are run by the agent, not here.
pub async fn run(ctx: Arc<FaultContext>) -> Result<Findings, Error> {
    match ctx.step.action {
        Action::Reset => Ok(reset::run(ctx, reset::Ending::Rst).await),
        Action::Drop => Ok(reset::run(ctx, reset::Ending::Fin).await),
        Action::Halfopen => Ok(halfopen::run(ctx, halfopen::Silence::StopReading).await),
        Action::Vanish => Ok(halfopen::run(ctx, halfopen::Silence::Vanish).await),
        Action::Slowloris => Ok(slowloris::run(ctx).await),
        Action::Garbage => Ok(garbage::run(ctx).await),
        Action::Badauth => Ok(badauth::run(ctx).await),
        Action::Storm => Ok(storm::run(ctx).await),
        Action::Proxy => Err(Error::ProxyStepWithoutProxy),
    }
}
