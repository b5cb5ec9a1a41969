//! Keyed random streams: every draw of the simulator comes from a ChaCha stream keyed by
//! (scenario seed, slot, stage, attempt, purpose), never from madsim's own generator. A slot's
//! latencies therefore do not move when scheduler code changes, and any slot can be re-run alone.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vortex::Stage;

/// What a stream's draws are for; each purpose has its own stream so that, say, a changed hang
/// probability never shifts the latencies drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Purpose {
    /// The attempt's latency.
    Latency = 1,
    /// Whether the attempt hangs or fails, and when a failure strikes.
    Fault = 2,
    /// Whether the CLIP self-check rejects the clip.
    Reject = 3,
    /// Which recorded row a slot's first attempts take under `joint_latency` (one per slot).
    Row = 4,
}

/// The stream for one draw site.
pub fn stream(seed: u64, slot: u64, stage: Stage, attempt: u32, purpose: Purpose) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    let words = [seed, slot, (stage.index() as u64) << 32 | attempt as u64, purpose as u64];
    let mut state = 0x5851_f42d_4c95_7f2d_u64;
    for (chunk, word) in key.chunks_exact_mut(8).zip(words) {
        state = splitmix64(state ^ word);
        chunk.copy_from_slice(&state.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

/// SplitMix64's finaliser: a fast, well-mixed 64-bit hash.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_differ_by_every_key_part_and_repeat_for_the_same_key() {
        let draw = |seed, slot, stage, attempt, purpose| stream(seed, slot, stage, attempt, purpose).gen::<u64>();
        let base = draw(1, 7, Stage::Audio, 0, Purpose::Latency);
        assert_eq!(base, draw(1, 7, Stage::Audio, 0, Purpose::Latency));
        for other in [
            draw(2, 7, Stage::Audio, 0, Purpose::Latency),
            draw(1, 8, Stage::Audio, 0, Purpose::Latency),
            draw(1, 7, Stage::Image, 0, Purpose::Latency),
            draw(1, 7, Stage::Audio, 1, Purpose::Latency),
            draw(1, 7, Stage::Audio, 0, Purpose::Fault),
        ] {
            assert_ne!(base, other);
        }
    }
}
