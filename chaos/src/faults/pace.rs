//! Runs a fault's sockets on schedule: `rate` per second (or as fast as
//! possible), never more than [`MAX_IN_FLIGHT`] at a time.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The most chaos sockets alive at once per step: the CLI process shares its
/// file-descriptor limit (20,000 here) with the load's sockets.
pub const MAX_IN_FLIGHT: usize = 1024;

/// Calls `job(i)` for `i in 0..count`, job `i` starting no earlier than
/// `i / rate` seconds after the call, with at most `max_in_flight` jobs
/// running; returns when all have ended.
pub async fn each<F, Fut>(count: u64, rate: Option<f64>, max_in_flight: usize, job: F)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    let permits = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let mut running = JoinSet::new();
    for i in 0..count {
        if let Some(rate) = rate {
            tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
        }
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let fut = job(i);
        running.spawn(async move {
            fut.await;
            drop(permit);
        });
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
}
