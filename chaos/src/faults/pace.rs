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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    // The schedule is pure timing logic: tokio's paused clock runs it in
    // virtual time, exactly and instantly.

    #[tokio::test(start_paused = true)]
    async fn job_i_starts_i_over_rate_seconds_after_the_call() {
        let start = Instant::now();
        let starts = Arc::new(Mutex::new(Vec::new()));
        let seen = starts.clone();
        each(5, Some(10.0), MAX_IN_FLIGHT, move |i| {
            seen.lock().unwrap().push((i, start.elapsed().as_millis()));
            async {}
        })
        .await;
        let starts = starts.lock().unwrap().clone();
        let expected: Vec<(u64, u128)> = (0..5).map(|i| (i, 100 * u128::from(i))).collect();
        assert_eq!(starts, expected);
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_max_in_flight_and_waits_for_the_last() {
        let start = Instant::now();
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (r, p) = (running.clone(), peak.clone());
        each(6, None, 2, move |_| {
            let (running, peak) = (r.clone(), p.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(1)).await;
                running.fetch_sub(1, Ordering::SeqCst);
            }
        })
        .await;
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(running.load(Ordering::SeqCst), 0);
        // Six one-second jobs, two at a time: three seconds, not six, not one.
        assert_eq!(start.elapsed().as_millis(), 3000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_slower_than_the_jobs_is_the_bound() {
        let start = Instant::now();
        each(4, Some(2.0), 1, |_| {
            tokio::time::sleep(Duration::from_millis(100))
        })
        .await;
        // The last job starts at 3/2 s and takes 100 ms.
        assert_eq!(start.elapsed().as_millis(), 1600);
    }
}
