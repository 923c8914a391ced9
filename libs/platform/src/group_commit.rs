//! Group commit: writes from concurrent calls applied together by one task.
//!
//! A write that must be durable before its call answers (a record upsert, an audit
//! entry) costs a transaction and a commit. At hundreds of calls per second most of
//! that cost is per transaction, not per row; so calls hand their item to a
//! [`GroupCommit`], whose task applies whatever piled up while the previous group was
//! being written, and answers each call with its own result. A lone call goes at once
//! (a group of one); under load groups grow, and the cost per call falls instead of
//! calls waiting behind each other's commits.
//!
//! [`GroupCommit::new`] returns the handle and the writer, a plain future that the
//! service hands to its runtime (`ServiceRuntime::task`), which runs it, logs its end
//! and turns health NOT_SERVING if it stops while the service runs. The writer ends
//! when the last handle is dropped, after finishing what was handed to it, so in-flight calls
//! drained at shutdown still get their answers.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::{mpsc, oneshot};

/// The writer task stopped (its apply function panicked, or the runtime is going down).
#[derive(Debug, thiserror::Error)]
#[error("the group-commit writer has stopped")]
pub struct WriterStopped;

/// Handle to a group-commit writer of items `T` answering `R`; cheap to clone.
pub struct GroupCommit<T, R> {
    queue: mpsc::Sender<(T, oneshot::Sender<R>)>,
}

impl<T, R> Clone for GroupCommit<T, R> {
    fn clone(&self) -> Self {
        Self { queue: self.queue.clone() }
    }
}

impl<T, R> std::fmt::Debug for GroupCommit<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

/// The writer of a [`GroupCommit`]: run it as a background task of the service.
pub type Writer = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

impl<T: Send + 'static, R: Send + 'static> GroupCommit<T, R> {
    /// The handle and its writer. `apply` gets up to `max_group` items in arrival
    /// order and must return one result per item, in the same order. Calls wait until
    /// the writer runs.
    pub fn new<F, Fut>(max_group: usize, apply: F) -> (Self, Writer)
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<R>> + Send,
    {
        let max_group = max_group.max(1);
        let (queue, mut queued) = mpsc::channel::<(T, oneshot::Sender<R>)>(max_group * 4);
        let writer = Box::pin(async move {
            let mut group = Vec::with_capacity(max_group);
            while queued.recv_many(&mut group, max_group).await > 0 {
                let (items, replies): (Vec<T>, Vec<oneshot::Sender<R>>) = group.drain(..).unzip();
                let results = apply(items).await;
                if results.len() != replies.len() {
                    tracing::error!(items = replies.len(), results = results.len(), "group commit lost results");
                }
                for (reply, result) in replies.into_iter().zip(results) {
                    // A caller that gave up (deadline, cancellation) no longer listens.
                    let _ = reply.send(result);
                }
            }
        });
        (Self { queue }, writer)
    }

    /// Queues `item` and waits for its result.
    pub async fn submit(&self, item: T) -> Result<R, WriterStopped> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((item, reply)).await.map_err(|_| WriterStopped)?;
        answer.await.map_err(|_| WriterStopped)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn every_call_gets_its_own_result_and_concurrent_calls_share_groups() {
        let groups = Arc::new(AtomicUsize::new(0));
        let seen = groups.clone();
        let (writer, task) = GroupCommit::new(16, move |items: Vec<u32>| {
            let groups = seen.clone();
            async move {
                groups.fetch_add(1, Ordering::SeqCst);
                // A write that takes a while, so that calls pile up behind it.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                items.into_iter().map(|i| i * 10).collect()
            }
        });
        tokio::spawn(task);
        let calls: Vec<_> = (0..64u32)
            .map(|i| {
                let w = writer.clone();
                tokio::spawn(async move { (i, w.submit(i).await.unwrap()) })
            })
            .collect();
        for call in calls {
            let (i, r) = call.await.unwrap();
            assert_eq!(r, i * 10);
        }
        let groups = groups.load(Ordering::SeqCst);
        assert!(groups < 64, "64 calls took {groups} groups");
        assert!(groups >= 4, "groups are capped at 16 items, got {groups}");
    }

    #[tokio::test]
    async fn a_writer_whose_apply_panics_answers_stopped_instead_of_hanging() {
        let (writer, task) = GroupCommit::new(4, |_: Vec<u32>| async move {
            panic!("apply failed");
            #[allow(unreachable_code)]
            Vec::<u32>::new()
        });
        tokio::spawn(task);
        assert!(writer.submit(1).await.is_err());
    }
}
