//! The request mix: classes drawn by weight from a seeded RNG, so one seed gives one sequence.

use std::num::NonZeroU32;

use rand::RngExt;
use rand::rngs::SmallRng;

#[derive(Debug, Clone)]
pub struct Mix {
    /// Running sums of the weights; a draw in [0, total) falls in exactly one class.
    cumulative: Vec<u64>,
    /// Per stage, when classes set `stage_weights`: the running sums for that stage (a
    /// class of weight 0 there is never drawn).
    stages: Vec<Vec<u64>>,
}

fn running_sums(weights: impl IntoIterator<Item = u64>) -> Vec<u64> {
    let mut sum = 0u64;
    weights
        .into_iter()
        .map(|w| {
            sum += w;
            sum
        })
        .collect()
}

impl Mix {
    pub fn new(weights: impl IntoIterator<Item = NonZeroU32>) -> Self {
        Self {
            cumulative: running_sums(weights.into_iter().map(|w| u64::from(w.get()))),
            stages: Vec::new(),
        }
    }

    /// A mix whose weights change by stage: `per_stage[s][class]`.
    pub fn staged(weights: impl IntoIterator<Item = NonZeroU32>, per_stage: &[Vec<u32>]) -> Self {
        Self {
            stages: per_stage
                .iter()
                .map(|w| running_sums(w.iter().map(|&x| u64::from(x))))
                .collect(),
            ..Self::new(weights)
        }
    }

    /// The mix of stage `i` (the whole run's when weights do not change by stage).
    pub fn for_stage(&self, i: usize) -> Mix {
        match self.stages.get(i) {
            Some(c) => Mix {
                cumulative: c.clone(),
                stages: Vec::new(),
            },
            None => Mix {
                cumulative: self.cumulative.clone(),
                stages: Vec::new(),
            },
        }
    }

    /// The index of the next class; 0 when the mix is empty (validation forbids that).
    pub fn pick(&self, rng: &mut SmallRng) -> usize {
        let Some(&total) = self.cumulative.last() else {
            return 0;
        };
        if self.cumulative.len() == 1 || total == 0 {
            return 0;
        }
        let x = rng.random_range(0..total);
        self.cumulative.partition_point(|&c| c <= x)
    }
}

/// Which requests the direct baseline takes: a draw of its own per request, from a generator
/// of its own, so the mix draws exactly the sequence it would without a baseline.
#[derive(Debug, Clone)]
pub struct DirectDraw {
    share: f64,
    rng: SmallRng,
}

impl DirectDraw {
    /// `share` in [0, 1].
    pub fn new(share: f64, rng: SmallRng) -> Self {
        Self {
            share: share.clamp(0.0, 1.0),
            rng,
        }
    }

    /// Whether the next request goes direct.
    pub fn next_is_direct(&mut self) -> bool {
        self.rng.random_bool(self.share)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn a_staged_mix_draws_each_stage_by_its_own_weights() {
        let w = |n| NonZeroU32::new(n).unwrap();
        let mix = Mix::staged([w(1), w(1)], &[vec![1, 0], vec![1, 9]]);
        let mut rng = SmallRng::seed_from_u64(3);
        let first = mix.for_stage(0);
        assert!(
            (0..1000).all(|_| first.pick(&mut rng) == 0),
            "weight 0 is never drawn"
        );
        let second = mix.for_stage(1);
        let flood = (0..10_000).filter(|_| second.pick(&mut rng) == 1).count();
        assert!((8_700..9_300).contains(&flood), "{flood}");
        // No stage weights: every stage draws by the class weights.
        let plain = Mix::new([w(1), w(3)]).for_stage(5);
        let three = (0..10_000).filter(|_| plain.pick(&mut rng) == 1).count();
        assert!((7_200..7_800).contains(&three), "{three}");
    }

    #[test]
    fn the_direct_draw_takes_its_share_and_is_the_same_for_one_seed() {
        let draws = |seed| {
            let mut d = DirectDraw::new(0.1, SmallRng::seed_from_u64(seed));
            (0..10_000).map(|_| d.next_is_direct()).collect::<Vec<_>>()
        };
        let a = draws(9);
        assert_eq!(a, draws(9), "one seed, one sequence");
        assert_ne!(a, draws(10));
        let direct = a.iter().filter(|&&d| d).count();
        assert!((850..1_150).contains(&direct), "{direct}");
    }
}
