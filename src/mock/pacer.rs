//! The clock that paces every mock stream in the process: one thread and a timing wheel of
//! short ticks, instead of one runtime timer per stream.
//!
//! Tokio's timer counts whole milliseconds, so a stream of 400 tokens a second (a token every
//! 2.5 ms) could only leave in gaps of 2 and 3 ms, an error of half a millisecond on every
//! token. Here a stream asks to be woken at an instant; the instant is rounded up to the next
//! tick of 200 µs, and every stream due in the same tick is woken together by one thread that
//! sleeps until the next tick anyone waits for. Ten thousand streams cost one sleeping thread,
//! not ten thousand timers, and a gap is off by less than a tick plus the scheduler's delay.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

/// The wheel's tick: deadlines are rounded up to a multiple of it. Short enough that
/// the rounding is a small share of a token gap at hundreds of tokens a second, long enough
/// that a busy wheel wakes its thread at most 5,000 times a second (200 µs).
const TICK_NANOS: u64 = 200_000;

/// Ticks the wheel holds directly (about 0.8 s); later wake-ups wait in an ordered map and
/// move into the wheel as it turns.
const SLOTS: u64 = 4096;

/// Where a stream stands with the pacer: the tick it is registered for and the waker it left,
/// so polling again before that tick does not register it twice.
#[derive(Default)]
pub(crate) struct Pace {
    tick: Option<u64>,
    waker: Option<Waker>,
}

impl Pace {
    /// Ready once `at` has passed; until then the task is woken at the first tick at or after
    /// `at`.
    pub fn poll_until(&mut self, at: Instant, cx: &mut Context<'_>) -> Poll<()> {
        let now = Instant::now();
        if now >= at {
            self.tick = None;
            return Poll::Ready(());
        }
        let pacer = pacer();
        let tick = pacer.tick_at(at);
        if self.tick == Some(tick) && self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            return Poll::Pending;
        }
        if pacer.register(tick, cx.waker().clone()) {
            self.tick = Some(tick);
            self.waker = Some(cx.waker().clone());
        } else {
            // That tick fired between reading the clock and taking the lock: poll again.
            self.tick = None;
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

struct TokenWheel {
    origin: Instant,
    wheel: Mutex<Wheel>,
    /// Signalled when a wake-up earlier than the one the thread sleeps towards arrives.
    sooner: Condvar,
}

struct Wheel {
    /// The first tick not yet fired.
    next: u64,
    /// Wakers due at tick `t` sit in `slots[t % SLOTS]`, for `next <= t < next + SLOTS`.
    slots: Vec<Vec<Waker>>,
    /// Wake-ups at or beyond `next + SLOTS`, by tick.
    far: BTreeMap<u64, Vec<Waker>>,
    /// Wakers held in all.
    len: usize,
    /// The tick the thread sleeps towards (`u64::MAX` while it waits for any work).
    planned: u64,
}

fn pacer() -> &'static TokenWheel {
    static WHEEL: OnceLock<&'static TokenWheel> = OnceLock::new();
    WHEEL.get_or_init(|| {
        let pacer: &'static TokenWheel = Box::leak(Box::new(TokenWheel {
            origin: Instant::now(),
            wheel: Mutex::new(Wheel {
                next: 0,
                slots: (0..SLOTS).map(|_| Vec::new()).collect(),
                far: BTreeMap::new(),
                len: 0,
                planned: u64::MAX,
            }),
            sooner: Condvar::new(),
        }));
        // Without the thread no stream would ever advance; failing to start one is as fatal
        // as failing to start the runtime.
        std::thread::Builder::new()
            .name("gauntlet-pacer".into())
            .spawn(move || pacer.run())
            .unwrap_or_else(|e| panic!("cannot start the stream pacer thread: {e}"));
        pacer
    })
}

impl TokenWheel {
    /// The first tick at or after `at`.
    fn tick_at(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(nanos.div_ceil(u128::from(TICK_NANOS))).unwrap_or(u64::MAX)
    }

    /// The last tick that has begun by `now`.
    fn tick_before(&self, now: Instant) -> u64 {
        let nanos = now.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(nanos / u128::from(TICK_NANOS)).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, Wheel> {
        // A waker that panicked while woken cannot leave the wheel half-changed: its state is
        // only touched under the lock, by code that does not panic.
        self.wheel.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Files `waker` under `tick`; false when that tick has already fired.
    fn register(&self, tick: u64, waker: Waker) -> bool {
        let mut w = self.lock();
        if w.len == 0 {
            // An idle wheel starts turning from now rather than catching up on empty ticks.
            w.next = w.next.max(self.tick_before(Instant::now()));
        }
        if tick < w.next {
            return false;
        }
        if tick - w.next < SLOTS {
            w.slots[(tick % SLOTS) as usize].push(waker);
        } else {
            w.far.entry(tick).or_default().push(waker);
        }
        w.len += 1;
        if tick < w.planned {
            w.planned = tick;
            self.sooner.notify_one();
        }
        true
    }

    fn run(&self) {
        let mut due: Vec<Waker> = Vec::new();
        loop {
            let mut w = self.lock();
            loop {
                let Some(tick) = w.first_tick() else {
                    w.planned = u64::MAX;
                    w = self.sooner.wait(w).unwrap_or_else(|p| p.into_inner());
                    continue;
                };
                w.planned = tick;
                let at = self.origin + Duration::from_nanos(tick.saturating_mul(TICK_NANOS));
                let now = Instant::now();
                if at <= now {
                    w.fire(self.tick_before(now), &mut due);
                    break;
                }
                w = self
                    .sooner
                    .wait_timeout(w, at - now)
                    .map(|(w, _)| w)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            drop(w);
            // Woken outside the lock, so the woken tasks can register again at once.
            for waker in due.drain(..) {
                waker.wake();
            }
        }
    }
}

impl Wheel {
    /// The earliest tick anyone waits for.
    fn first_tick(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        (self.next..self.next + SLOTS)
            .find(|t| !self.slots[(t % SLOTS) as usize].is_empty())
            .or_else(|| self.far.keys().next().copied())
    }

    /// Moves every waker due by tick `now` into `out` and turns the wheel past it.
    fn fire(&mut self, now: u64, out: &mut Vec<Waker>) {
        let before = out.len();
        let end = now.saturating_add(1);
        for t in self.next..end.min(self.next + SLOTS) {
            out.append(&mut self.slots[(t % SLOTS) as usize]);
        }
        while let Some(e) = self.far.first_entry() {
            if *e.key() >= end {
                break;
            }
            out.extend(e.remove());
        }
        self.next = self.next.max(end);
        // Wake-ups that came within the wheel's reach move into it.
        while let Some(e) = self.far.first_entry() {
            if *e.key() >= self.next + SLOTS {
                break;
            }
            let t = *e.key();
            let wakers = e.remove();
            self.slots[(t % SLOTS) as usize].extend(wakers);
        }
        self.len -= out.len() - before;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_a_task_after_its_instant_and_not_much_later() {
        for delay_us in [300u64, 2_500, 40_000, 1_500_000] {
            let at = Instant::now() + Duration::from_micros(delay_us);
            let mut pace = Pace::default();
            std::future::poll_fn(|cx| pace.poll_until(at, cx)).await;
            let late = Instant::now().saturating_duration_since(at);
            assert!(Instant::now() >= at, "woken before {delay_us} us");
            // Generous: a loaded machine may delay any thread by many milliseconds.
            assert!(late < Duration::from_millis(500), "{late:?} late");
        }
    }

    #[test]
    fn a_wheel_fires_ticks_in_order_and_keeps_far_ones_until_due() {
        let waker = Waker::noop().clone();
        let mut w = Wheel {
            next: 10,
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            far: BTreeMap::new(),
            len: 0,
            planned: u64::MAX,
        };
        let put = |w: &mut Wheel, t: u64| {
            if t - w.next < SLOTS {
                w.slots[(t % SLOTS) as usize].push(waker.clone());
            } else {
                w.far.entry(t).or_default().push(waker.clone());
            }
            w.len += 1;
        };
        put(&mut w, 12);
        put(&mut w, 12);
        put(&mut w, 15);
        put(&mut w, 10 + SLOTS + 7);
        assert_eq!(w.first_tick(), Some(12));
        let mut out = Vec::new();
        w.fire(11, &mut out);
        assert!(out.is_empty());
        w.fire(12, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(w.first_tick(), Some(15));
        out.clear();
        w.fire(100, &mut out);
        assert_eq!(out.len(), 1);
        // The far one moved into the wheel once within reach, and fires at its tick only.
        assert!(w.far.is_empty());
        assert_eq!(w.first_tick(), Some(10 + SLOTS + 7));
        out.clear();
        w.fire(10 + SLOTS + 6, &mut out);
        assert!(out.is_empty());
        w.fire(10 + SLOTS + 7, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(w.len, 0);
        assert_eq!(w.first_tick(), None);
    }
}
