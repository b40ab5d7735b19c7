//! The request mix: classes drawn by weight from a seeded RNG, so one seed gives one sequence.

use std::num::NonZeroU32;

use rand::RngExt;
use rand::rngs::SmallRng;

#[derive(Debug, Clone)]
pub struct Mix {
    /// Running sums of the weights; a draw in [0, total) falls in exactly one class.
    cumulative: Vec<u64>,
}

impl Mix {
    pub fn new(weights: impl IntoIterator<Item = NonZeroU32>) -> Self {
        let mut sum = 0u64;
        let cumulative = weights
            .into_iter()
            .map(|w| {
                sum += u64::from(w.get());
                sum
            })
            .collect();
        Self { cumulative }
    }

    pub fn len(&self) -> usize {
        self.cumulative.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cumulative.is_empty()
    }

    /// The index of the next class; 0 when the mix is empty (validation forbids that).
    pub fn pick(&self, rng: &mut SmallRng) -> usize {
        let Some(&total) = self.cumulative.last() else {
            return 0;
        };
        if self.cumulative.len() == 1 {
            return 0;
        }
        let x = rng.random_range(0..total);
        self.cumulative.partition_point(|&c| c <= x)
    }
}
