//! A runtime for work that may wait while the node is busy with its clients: one OS thread
//! of its own, at a lower scheduling priority (nice [`NICE`] on Linux), running a
//! single-threaded Tokio runtime. What runs there uses the CPU the clients leave: on a node
//! with an idle core it runs at once, on a saturated one it falls behind instead of slowing
//! handshakes and acknowledgements.
//!
//! Only work that keeps its I/O to itself belongs here (its own HTTP connections, say):
//! a connection opened on one runtime is driven by that runtime's reactor, so database calls
//! stay on the main runtime (see [`Background::main`]).

use std::{future::Future, thread};

use tokio::{runtime::Handle, sync::oneshot, task::JoinHandle};

/// The nice value of the background thread (0 is the default, 19 the lowest priority): under
/// Linux's scheduler a busy nice-0 thread gets about ten times its CPU time.
pub const NICE: i32 = 10;

/// A running background runtime; dropping it stops the runtime (its tasks are dropped).
pub struct Background {
    handle: Handle,
    main: Handle,
    _stop: Option<oneshot::Sender<()>>,
}

impl Background {
    /// Starts the thread named `name` and its runtime. Must be called within the main
    /// runtime. If the thread cannot be started, the work runs on the main runtime instead.
    pub fn start(name: &str) -> Self {
        let main = Handle::current();
        match Self::spawn_thread(name) {
            Ok((handle, stop)) => Self {
                handle,
                main,
                _stop: Some(stop),
            },
            Err(e) => {
                tracing::warn!(cause = %e, thread = name, "cannot start a background thread; its work runs on the main runtime");
                Self {
                    handle: main.clone(),
                    main,
                    _stop: None,
                }
            }
        }
    }

    fn spawn_thread(name: &str) -> std::io::Result<(Handle, oneshot::Sender<()>)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name(format!("{name}-blocking"))
            .on_thread_start(lower_priority)
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        thread::Builder::new().name(name.to_string()).spawn(move || {
            lower_priority();
            // Runs the spawned tasks until the `Background` is dropped.
            runtime.block_on(async {
                let _ = stopped.await;
            });
            runtime.shutdown_background();
        })?;
        Ok((handle, stop))
    }

    /// Runs `task` on the background runtime.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(task)
    }

    /// The main runtime, for the database calls of background work.
    pub fn main(&self) -> &Handle {
        &self.main
    }
}

/// Lowers the calling thread's scheduling priority to [`NICE`] (Linux: the nice value is per
/// thread). Elsewhere, or if refused, the thread keeps the default priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), NICE) {
        tracing::debug!(cause = %e, "cannot lower a background thread's priority");
    }
}

/// The calling thread's nice value (Linux), for tests.
#[cfg(target_os = "linux")]
pub fn current_nice() -> std::io::Result<i32> {
    Ok(rustix::process::getpriority_process(Some(rustix::thread::gettid()))?)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_a_lower_priority_thread_and_stops_with_it() {
        let main_nice = current_nice().unwrap();
        let bg = Background::start("sio-test-bg");
        let (name, nice) = bg
            .spawn(async { (thread::current().name().map(str::to_string), current_nice().unwrap()) })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("sio-test-bg"));
        assert_eq!(nice, NICE.max(main_nice), "the background thread is niced");
        assert_eq!(current_nice().unwrap(), main_nice, "the main thread keeps its priority");

        // Work on the background asks the main runtime for what must run there.
        let main = bg.main().clone();
        let on_main = bg
            .spawn(async move { main.spawn(async { thread::current().name().map(str::to_string) }).await })
            .await
            .unwrap()
            .unwrap();
        assert_ne!(on_main.as_deref(), Some("sio-test-bg"));

        // Dropping it stops its runtime: a task still pending is dropped, not left running.
        let (tx, rx) = oneshot::channel::<()>();
        let pending = bg.spawn(async move {
            let _keep = tx;
            std::future::pending::<()>().await
        });
        drop(bg);
        assert!(rx.await.is_err(), "the pending task was dropped with the runtime");
        assert!(pending.await.unwrap_err().is_cancelled());
    }
}
