//! What a slot is asked to produce, read from a recipe file and checked before any model runs.
//!
//! ```
//! let recipe = vortex::Recipe::parse("recipe.yaml", "slot_id: 7\nscript: Hello.\nprompt: a news anchor\n").unwrap();
//! assert_eq!(recipe.voice.name, "af_heart");
//! let err = vortex::Recipe::parse("recipe.yaml", "slot_id: 7\nscript: ' '\nprompt: x\n").unwrap_err();
//! assert_eq!(err.to_string(), "recipe.yaml: script: is only whitespace; expected text to speak");
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::yaml::{self, quoted};
use crate::ConfigError;

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

/// Voice settings for text-to-speech; a key left out takes its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a map with name and speed")]
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

/// Expression settings for the animation; a key left out takes its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a map with preset and intensity")]
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

/// The largest recipe file read: a recipe is a script of at most [`MAX_SCRIPT_CHARS`] characters
/// (4 bytes each at most in UTF-8) and a short prompt; 64 KiB holds that with room for YAML.
pub const MAX_RECIPE_BYTES: u64 = 64 * 1024;

/// The longest script, in characters (Unicode scalar values). Speech runs at about 15
/// characters a second (150 words a minute), and Kokoro speaks at most twice as fast
/// ([`SPEED_RANGE`]): a 45-second slot holds about 675 characters at normal speed and 1,350 at
/// the fastest. 1,500 admits every script that can fit a slot, and stays far below Kokoro's own
/// 20,000-character bound (whose speech would run for 20 minutes).
pub const MAX_SCRIPT_CHARS: usize = 1_500;

/// The longest run of a script's characters without whitespace: Kokoro's text front end
/// refuses longer ones (its time grows with the cube of a run's length); 64 covers English
/// words, numbers, e-mail addresses and most URLs.
pub const MAX_WORD_CHARS: usize = 64;

/// The longest prompt, in characters. CLIP reads 77 tokens (75 besides its start and end
/// markers); English averages about 4 characters per token, so a prompt that fits is about 300
/// characters. This bound only refuses at once what could never fit; real mode counts the
/// tokens exactly with the loaded CLIP tokenizer before any model runs.
pub const MAX_PROMPT_CHARS: usize = 600;

/// The longest voice name: Kokoro's are like `af_heart`; a name is a voice file's stem.
pub const MAX_VOICE_NAME_CHARS: usize = 64;

/// Kokoro's speaking speeds, slowest to fastest (1 is normal).
pub const SPEED_RANGE: (f32, f32) = (0.5, 2.0);

/// The expression presets the video stage knows (its driver defines their motion).
pub const EXPRESSION_PRESETS: [&str; 4] = ["neutral", "excited", "manic", "calm"];

/// A recipe value that cannot be generated: the key (`voice.speed`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct RecipeError {
    /// Dotted key path, as in the recipe file.
    pub key: &'static str,
    /// What is wrong, with the bad value and the allowed range.
    pub message: String,
}

impl RecipeError {
    fn new(key: &'static str, message: impl Into<String>) -> Self {
        RecipeError { key, message: message.into() }
    }
}

impl Recipe {
    /// Reads a recipe file (YAML; JSON is YAML too) of at most [`MAX_RECIPE_BYTES`] and checks
    /// it with [`Recipe::validate`]. Errors name the file, the key and the bad value.
    pub fn load(path: &Path) -> Result<Recipe, ConfigError> {
        let text = yaml::read_text(path, MAX_RECIPE_BYTES)?;
        Recipe::parse(&path.display().to_string(), &text)
    }

    /// [`Recipe::load`] of text; `origin` names it in errors (a file, `request body`).
    pub fn parse(origin: &str, text: &str) -> Result<Recipe, ConfigError> {
        if text.len() as u64 > MAX_RECIPE_BYTES {
            let message = format!("{} bytes, larger than the limit of {MAX_RECIPE_BYTES} bytes", text.len());
            return Err(yaml::invalid(origin, "(file)", message));
        }
        let recipe: Recipe = yaml::parse(origin, text)?;
        recipe.validate().map_err(|e| yaml::invalid(origin, e.key, e.message))?;
        Ok(recipe)
    }

    /// Checks every value against the bounds the stages accept, so that a recipe that cannot
    /// be generated is refused before any model runs: a script that is empty, blank, longer
    /// than [`MAX_SCRIPT_CHARS`], holds control characters or a run of more than
    /// [`MAX_WORD_CHARS`] characters without whitespace; a prompt that is empty, blank or
    /// longer than [`MAX_PROMPT_CHARS`]; a voice name that is empty or not a file stem; a speed
    /// outside [`SPEED_RANGE`]; a preset not in [`EXPRESSION_PRESETS`]; an intensity outside 0
    /// to 1. Whether the voice exists is checked in real mode, against the loaded voices.
    pub fn validate(&self) -> Result<(), RecipeError> {
        text("script", &self.script, MAX_SCRIPT_CHARS)?;
        // The runs Kokoro's tokenizer splits on: ASCII whitespace only.
        if let Some(word) =
            self.script.split(|c: char| c.is_ascii_whitespace()).find(|w| w.chars().count() > MAX_WORD_CHARS)
        {
            let message = format!(
                "a word of {} characters without a space ({}); at most {MAX_WORD_CHARS} are spoken as one word",
                word.chars().count(),
                quoted(word)
            );
            return Err(RecipeError::new("script", message));
        }
        text("prompt", &self.prompt, MAX_PROMPT_CHARS)?;
        let name = &self.voice.name;
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_VOICE_NAME_CHARS {
            let message = format!("{}: expected a voice name of 1 to {MAX_VOICE_NAME_CHARS} characters", quoted(name));
            return Err(RecipeError::new("voice.name", message));
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            let message =
                format!("{}: expected a voice name of letters, digits, `_` and `-` (like af_heart)", quoted(name));
            return Err(RecipeError::new("voice.name", message));
        }
        let speed = self.voice.speed;
        if !(speed.is_finite() && (SPEED_RANGE.0..=SPEED_RANGE.1).contains(&speed)) {
            let message =
                format!("{speed}: expected a speed from {} to {} (1 is normal)", SPEED_RANGE.0, SPEED_RANGE.1);
            return Err(RecipeError::new("voice.speed", message));
        }
        let preset = &self.expression.preset;
        if !EXPRESSION_PRESETS.contains(&preset.as_str()) {
            let message = format!("{}: expected one of {}", quoted(preset), EXPRESSION_PRESETS.join(", "));
            return Err(RecipeError::new("expression.preset", message));
        }
        let intensity = self.expression.intensity;
        if !(intensity.is_finite() && (0.0..=1.0).contains(&intensity)) {
            return Err(RecipeError::new(
                "expression.intensity",
                format!("{intensity}: expected a number from 0 to 1"),
            ));
        }
        Ok(())
    }
}

/// Checks a text field: not blank, at most `max` characters, no control characters but line
/// breaks and tabs (a NUL or an escape sequence in a script is a mistake, and TTS would read it).
fn text(key: &'static str, value: &str, max: usize) -> Result<(), RecipeError> {
    if value.trim().is_empty() {
        let what = if value.is_empty() { "empty" } else { "only whitespace" };
        return Err(RecipeError::new(
            key,
            format!("is {what}; expected text to {}", if key == "script" { "speak" } else { "show" }),
        ));
    }
    let chars = value.chars().count();
    if chars > max {
        return Err(RecipeError::new(key, format!("{chars} characters; at most {max} are allowed")));
    }
    if let Some((at, c)) = value.chars().enumerate().find(|(_, c)| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(RecipeError::new(
            key,
            format!(
                "holds the control character {} at character {at}; only line breaks and tabs are allowed",
                c.escape_default()
            ),
        ));
    }
    Ok(())
}
