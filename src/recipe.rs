//! What a slot is asked to produce.

use serde::{Deserialize, Serialize};

/// The input of one slot: what to say, what to show, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a recipe: a map with slot_id, script, prompt and optional voice, expression, seed")]
pub struct Recipe {
    /// The slot's number in the director's stream.
    pub slot_id: u64,
    /// Text the audio stage speaks.
    pub script: String,
    /// Visual prompt for the actor image and for verification.
    pub prompt: String,
    /// Voice settings of the audio stage.
    #[serde(default)]
    pub voice: Voice,
    /// Expression settings of the video stage.
    #[serde(default)]
    pub expression: Expression,
    /// Seed that makes image generation repeatable.
    #[serde(default)]
    pub seed: u64,
}

/// Voice settings for text-to-speech.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Voice {
    /// Kokoro voice pack name.
    pub name: String,
    /// Speaking speed, 1.0 is normal.
    pub speed: f32,
}

impl Default for Voice {
    fn default() -> Self {
        Voice { name: "af_heart".into(), speed: 1.0 }
    }
}

/// Expression settings for the animation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expression {
    /// Named expression preset.
    pub preset: String,
    /// How strongly the preset is applied, 0..=1.
    pub intensity: f32,
}

impl Default for Expression {
    fn default() -> Self {
        Expression { preset: "neutral".into(), intensity: 0.5 }
    }
}

impl Recipe {
    /// A recipe with default voice and expression.
    pub fn new(slot_id: u64, script: impl Into<String>, prompt: impl Into<String>) -> Self {
        Recipe {
            slot_id,
            script: script.into(),
            prompt: prompt.into(),
            voice: Voice::default(),
            expression: Expression::default(),
            seed: slot_id,
        }
    }
}
