//! One background task that gathers queued items into groups (one per destination) and writes
//! each group when it is due — it holds `max_rows` rows or its first item is `max_age` old —
//! keeping a group whose write fails for a retry at the next tick; [`Batcher::flush`] writes
//! everything (servers call it when they stop). The offline push batcher and the
//! served-feature logger are two uses of it.

use std::{future::Future, time::Duration};

/// Items of one destination, written together.
pub trait Group: Send + Sized + 'static {
    type Item: Send + 'static;
    /// A group holding `item`.
    fn new(item: Self::Item) -> Self;
    /// Whether `item` belongs in this group (same destination and shape).
    fn takes(&self, item: &Self::Item) -> bool;
    fn add(&mut self, item: Self::Item);
    fn rows(&self) -> usize;
    /// One attempt to write the group; on failure the group is kept and retried.
    fn write(&self) -> impl Future<Output = Result<(), String>> + Send;
    /// Told when the group was written, once.
    fn written(self) {}
}

/// When groups are written.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub max_rows: usize,
    pub max_age: Duration,
}

enum Msg<I> {
    Item(I),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The handle to the task; dropping every handle ends it after writing what it holds.
pub struct Batcher<G: Group> {
    queue: tokio::sync::mpsc::UnboundedSender<Msg<G::Item>>,
}

impl<G: Group> Batcher<G> {
    /// Starts the task on the current runtime (it ticks at most once a second).
    pub fn start(policy: Policy) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Msg<G::Item>>();
        tokio::spawn(async move {
            let mut groups: Vec<(G, std::time::Instant)> = Vec::new();
            let mut tick = tokio::time::interval(policy.max_age.min(Duration::from_secs(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let flush_all = tokio::select! {
                    msg = rx.recv() => match msg {
                        Some(Msg::Item(item)) => {
                            match groups.iter_mut().find(|(g, _)| g.takes(&item)) {
                                Some((g, _)) => g.add(item),
                                None => groups.push((G::new(item), std::time::Instant::now())),
                            }
                            None
                        }
                        Some(Msg::Flush(done)) => Some(Some(done)),
                        None => Some(None),
                    },
                    _ = tick.tick() => None,
                };
                let everything = flush_all.is_some();
                let mut kept = Vec::new();
                for (g, since) in groups.drain(..) {
                    let due = everything
                        || g.rows() >= policy.max_rows
                        || since.elapsed() >= policy.max_age;
                    if !due {
                        kept.push((g, since));
                    } else if g.rows() == 0 {
                        g.written();
                    } else {
                        match g.write().await {
                            Ok(()) => g.written(),
                            Err(_) => kept.push((g, std::time::Instant::now())),
                        }
                    }
                }
                groups = kept;
                match flush_all {
                    Some(Some(done)) => {
                        let _ = done.send(());
                    }
                    Some(None) => return,
                    None => {}
                }
            }
        });
        Self { queue: tx }
    }

    /// Queues `item`; gives it back if the task has ended.
    pub fn send(&self, item: G::Item) -> Result<(), G::Item> {
        self.queue.send(Msg::Item(item)).map_err(|e| match e.0 {
            Msg::Item(i) => i,
            Msg::Flush(_) => unreachable!("an item was sent"),
        })
    }

    /// Writes everything queued and held; returns when it is written (or failed and kept).
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.queue.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Items `(destination, rows)`; writes to destination "bad" fail until `heal`.
    struct Test {
        dest: &'static str,
        rows: usize,
        log: Arc<Mutex<Vec<(&'static str, usize)>>>,
        healed: Arc<std::sync::atomic::AtomicBool>,
    }

    type Item = (
        &'static str,
        usize,
        Arc<Mutex<Vec<(&'static str, usize)>>>,
        Arc<std::sync::atomic::AtomicBool>,
    );

    impl Group for Test {
        type Item = Item;
        fn new((dest, rows, log, healed): Item) -> Self {
            Self {
                dest,
                rows,
                log,
                healed,
            }
        }
        fn takes(&self, item: &Item) -> bool {
            self.dest == item.0
        }
        fn add(&mut self, item: Item) {
            self.rows += item.1;
        }
        fn rows(&self) -> usize {
            self.rows
        }
        async fn write(&self) -> Result<(), String> {
            if self.dest == "bad" && !self.healed.load(std::sync::atomic::Ordering::Relaxed) {
                return Err("down".into());
            }
            self.log.lock().unwrap().push((self.dest, self.rows));
            Ok(())
        }
    }

    #[tokio::test]
    async fn groups_are_written_when_full_or_flushed_and_kept_when_failing() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let healed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let b = Batcher::<Test>::start(Policy {
            max_rows: 10,
            max_age: Duration::from_secs(3600),
        });
        let item = |d, n| (d, n, log.clone(), healed.clone());
        b.send(item("a", 4)).ok().unwrap();
        b.send(item("b", 1)).ok().unwrap();
        b.send(item("a", 6)).ok().unwrap();
        b.send(item("bad", 2)).ok().unwrap();
        // "a" is full: written on the next message or tick; the rest wait for a flush.
        tokio::time::sleep(Duration::from_millis(50)).await;
        b.flush().await;
        let mut got = log.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, [("a", 10), ("b", 1)], "the failing group is kept");
        healed.store(true, std::sync::atomic::Ordering::Relaxed);
        b.flush().await;
        assert!(log.lock().unwrap().contains(&("bad", 2)), "retried");
    }
}
