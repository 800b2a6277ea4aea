//! A helper thread on another CPU, and the work it shares with the thread that made it.
//!
//! A new thread is queued on its parent's CPU. On the 2-vCPU virtual machines measured, it then
//! waited there 2.8-3.6 ms (until the load balancer moved it, or until the parent blocked)
//! while the other CPU idled: longer than a mid-size chart takes to render. Created with its
//! affinity set to the other CPUs it started within 0.1-0.2 ms (docs/renderer.md, "A helper
//! that runs at once"). Once running, it may go anywhere again.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// Which end of a [`SharedWork`]'s items a thread takes from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Take {
    Front,
    Back,
}

/// Items `0..len` shared by two threads, one taking from the front and one from the back,
/// each result kept in its item's slot. When the two meet, the item the other thread may
/// still be working on is the last one from its end.
pub(crate) struct SharedWork<R> {
    /// The items nobody has taken yet, as (start, end).
    unclaimed: Mutex<(usize, usize)>,
    /// The results so far, and how many there are.
    done: Mutex<(Vec<Option<R>>, usize)>,
    all_done: Condvar,
    abandoned: AtomicBool,
}

impl<R> SharedWork<R> {
    pub(crate) fn new(len: usize) -> Self {
        Self {
            unclaimed: Mutex::new((0, len)),
            done: Mutex::new(((0..len).map(|_| None).collect(), 0)),
            all_done: Condvar::new(),
            abandoned: AtomicBool::new(false),
        }
    }

    /// The next item from `end`, unless none is left or the work was abandoned.
    pub(crate) fn claim(&self, end: Take) -> Option<usize> {
        if self.abandoned.load(Ordering::Relaxed) {
            return None;
        }
        let mut unclaimed = lock(&self.unclaimed);
        let (start, stop) = &mut *unclaimed;
        if start >= stop {
            return None;
        }
        Some(match end {
            Take::Front => {
                *start += 1;
                *start - 1
            }
            Take::Back => {
                *stop -= 1;
                *stop
            }
        })
    }

    /// Stores the result of a claimed item.
    pub(crate) fn finish(&self, item: usize, result: R) {
        let mut done = lock(&self.done);
        let (results, count) = &mut *done;
        if let Some(slot) = results.get_mut(item) {
            *slot = Some(result);
            *count += 1;
        }
        // Only the last result is worth a wake-up (a system call each): waiters wait for all.
        if *count == results.len() {
            self.all_done.notify_all();
        }
    }

    /// Makes `claim` hand out nothing more; items already taken are still finished.
    pub(crate) fn abandon(&self) {
        self.abandoned.store(true, Ordering::Relaxed);
    }

    /// Waits until every item has its result, then takes them all, in item order.
    pub(crate) fn wait_for_all(&self) -> Vec<Option<R>> {
        let mut done = lock(&self.done);
        while done.1 < done.0.len() {
            done = self
                .all_done
                .wait(done)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        std::mem::take(&mut done.0)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Results are stored whole, so a panic elsewhere leaves nothing half-done behind a lock.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `work` on a detached thread with a stack of `stack_bytes`, started on one of the
/// allowed CPUs other than the caller's where there is one. A panic in `work` ends only that
/// thread (the panic message is printed as usual).
pub(crate) fn spawn_on_another_cpu(
    name: &str,
    stack_bytes: usize,
    work: Box<dyn FnOnce() + Send>,
) -> io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // `work` comes back when no other CPU is allowed or the affinity cannot be read.
        match linux::spawn_pinned(name, stack_bytes, work) {
            linux::Spawned::Started => return Ok(()),
            linux::Spawned::Failed(err) => return Err(err),
            linux::Spawned::NoOtherCpu(work) => return spawn_anywhere(name, stack_bytes, work),
        }
    }
    #[allow(unreachable_code)]
    spawn_anywhere(name, stack_bytes, work)
}

fn spawn_anywhere(
    name: &str,
    stack_bytes: usize,
    work: Box<dyn FnOnce() + Send>,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name(name.to_string())
        .stack_size(stack_bytes)
        .spawn(work)
        .map(drop)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod linux {
    use std::io;
    use std::mem::{size_of, zeroed};

    pub(super) enum Spawned {
        Started,
        Failed(io::Error),
        NoOtherCpu(Box<dyn FnOnce() + Send>),
    }

    /// What the new thread receives: its work, and the CPUs it may move to once running.
    struct Start {
        work: Box<dyn FnOnce() + Send>,
        allowed: libc::cpu_set_t,
        name: Option<std::ffi::CString>,
    }

    pub(super) fn spawn_pinned(
        name: &str,
        stack_bytes: usize,
        work: Box<dyn FnOnce() + Send>,
    ) -> Spawned {
        // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
        let mut allowed: libc::cpu_set_t = unsafe { zeroed() };
        // SAFETY: fills `allowed`, whose size is passed along.
        if unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut allowed) } != 0 {
            return Spawned::NoOtherCpu(work);
        }
        let mut others = allowed;
        // SAFETY: sched_getcpu only reads this thread's current CPU.
        let current = unsafe { libc::sched_getcpu() };
        if let Ok(current) = usize::try_from(current) {
            // SAFETY: CPU_CLR bounds-checks the index against the set's size.
            unsafe { libc::CPU_CLR(current, &mut others) };
        }
        // SAFETY: CPU_COUNT only reads the set.
        if unsafe { libc::CPU_COUNT(&others) } == 0 {
            return Spawned::NoOtherCpu(work);
        }
        let name = std::ffi::CString::new(name).ok();
        let start = Box::into_raw(Box::new(Start {
            work,
            allowed,
            name,
        }));
        // SAFETY: the attribute object is initialised before use and destroyed after
        // pthread_create has copied what it needs; `start` goes to the new thread, which
        // owns it from then on, or is taken back here when no thread was made.
        unsafe {
            let mut attr: libc::pthread_attr_t = zeroed();
            let mut rc = libc::pthread_attr_init(&mut attr);
            if rc == 0 {
                rc = libc::pthread_attr_setstacksize(&mut attr, stack_bytes);
            }
            if rc == 0 {
                rc = libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
            }
            if rc == 0 {
                // A failure here only costs the early start.
                let _ = libc::pthread_attr_setaffinity_np(
                    &mut attr,
                    size_of::<libc::cpu_set_t>(),
                    &others,
                );
                let mut thread: libc::pthread_t = zeroed();
                rc = libc::pthread_create(&mut thread, &attr, run, start.cast());
                libc::pthread_attr_destroy(&mut attr);
            }
            if rc != 0 {
                drop(Box::from_raw(start));
                return Spawned::Failed(io::Error::from_raw_os_error(rc));
            }
        }
        Spawned::Started
    }

    extern "C" fn run(start: *mut libc::c_void) -> *mut libc::c_void {
        // SAFETY: `spawn_pinned` passes a `Start` it boxed and gave up.
        let start = unsafe { Box::from_raw(start.cast::<Start>()) };
        let Start {
            work,
            allowed,
            name,
        } = *start;
        if let Some(name) = name {
            // SAFETY: PR_SET_NAME reads a NUL-terminated string (cut to 15 bytes).
            unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
        }
        // Free to move again, should this CPU become busy.
        // SAFETY: reads `allowed`, whose size is passed along.
        unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &allowed) };
        // Unwinding must not cross this C frame.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        std::ptr::null_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn runs_the_work_with_the_stack_asked_for() {
        let (send, receive) = mpsc::channel();
        spawn_on_another_cpu(
            "test-helper",
            64 * 1024 * 1024,
            Box::new(move || {
                // Deeper than the 2 MiB default stack allows.
                let big = [7u8; 8 * 1024 * 1024];
                let _ = send.send(
                    std::hint::black_box(&big)
                        .iter()
                        .map(|&b| b as u64)
                        .sum::<u64>(),
                );
            }),
        )
        .expect("spawn the helper");
        let sum = receive
            .recv_timeout(Duration::from_secs(30))
            .expect("the helper ran");
        assert_eq!(sum, 7 * 8 * 1024 * 1024);
    }

    #[test]
    fn a_panicking_helper_ends_alone() {
        let (send, receive) = mpsc::channel::<()>();
        spawn_on_another_cpu(
            "test-panics",
            1024 * 1024,
            Box::new(move || {
                let _keep = send;
                panic!("helper panics on purpose");
            }),
        )
        .expect("spawn the helper");
        // The sender is dropped when the panic unwinds: the receiver sees a hang-up, and this
        // process is still alive to see it.
        assert_eq!(
            receive.recv_timeout(Duration::from_secs(30)),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn once_running_the_helper_may_use_every_allowed_cpu() {
        // SAFETY: as in `linux::spawn_pinned`.
        let mut allowed: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: fills `allowed`, whose size is passed along.
        assert_eq!(unsafe { libc::sched_getaffinity(0, size, &mut allowed) }, 0);
        let (send, receive) = mpsc::channel();
        spawn_on_another_cpu(
            "test-affinity",
            1024 * 1024,
            Box::new(move || {
                // SAFETY: as above.
                let mut mine: libc::cpu_set_t = unsafe { std::mem::zeroed() };
                // SAFETY: fills `mine`, whose size is passed along.
                let rc = unsafe { libc::sched_getaffinity(0, size, &mut mine) };
                let _ = send.send((rc, mine));
            }),
        )
        .expect("spawn the helper");
        let (rc, mine) = receive
            .recv_timeout(Duration::from_secs(30))
            .expect("the helper ran");
        assert_eq!(rc, 0);
        // SAFETY: CPU_EQUAL only reads both sets.
        assert!(unsafe { libc::CPU_EQUAL(&mine, &allowed) });
    }
}
